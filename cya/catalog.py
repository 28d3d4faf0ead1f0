"""The catalog: SQLite at ``.cya/catalog.sqlite`` in the tree root.

The tree's file names are the truth about which backups exist; the catalog
records what cannot be read from them (when a run started and ended, what
duplicity counted, which files it could not read) and, later, the archive.
Every multi-step change is one transaction. Migrations are numbered and run
in order; ``PRAGMA user_version`` says how far a catalog has come.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE backups (
        time TEXT PRIMARY KEY,          -- duplicity time stamp, UTC
        leaf TEXT NOT NULL,
        base TEXT,                      -- NULL for the first, full backup
        full INTEGER NOT NULL,
        new_levels TEXT NOT NULL,       -- space-separated level paths
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        source_files INTEGER,
        source_bytes INTEGER,
        new_bytes INTEGER,
        unreadable INTEGER NOT NULL DEFAULT 0
    );
    """,
    """
    ALTER TABLE backups ADD COLUMN parent TEXT;  -- the backup this one diffed against
    CREATE TABLE file_index (
        backup TEXT PRIMARY KEY,        -- duplicity time stamp
        parent TEXT,                    -- NULL for a full
        delta BLOB NOT NULL             -- zlib of core.fileindex.encode: paths A/M/D
    );
    """,
)


@dataclass(frozen=True)
class BackupRecord:
    time: str
    leaf: str
    base: str | None
    full: bool
    new_levels: str
    started_at: str
    finished_at: str
    source_files: int | None
    source_bytes: int | None
    new_bytes: int | None
    unreadable: int
    parent: str | None = None


class Catalog:
    def __init__(self, path: Path):
        self.path = path
        fresh = not path.exists()
        if fresh:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as db:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('tree_id', ?)",
                       (secrets.token_hex(8),))

    @property
    def tree_id(self) -> str:
        return self.db.execute("SELECT value FROM meta WHERE key = 'tree_id'").fetchone()[0]

    def record_backup(self, record: BackupRecord, index: bytes | None = None) -> None:
        """Record a finished backup and (if given) its file index delta, in one transaction."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO backups VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.time, record.leaf, record.base, int(record.full), record.new_levels,
                 record.started_at, record.finished_at, record.source_files,
                 record.source_bytes, record.new_bytes, record.unreadable, record.parent),
            )
            if index is not None:
                db.execute("INSERT OR REPLACE INTO file_index VALUES (?,?,?)",
                           (record.time, record.parent, zlib.compress(index, 6)))

    def backups(self) -> list[BackupRecord]:
        rows = self.db.execute("SELECT * FROM backups ORDER BY time").fetchall()
        return [BackupRecord(r[0], r[1], r[2], bool(r[3]), *r[4:]) for r in rows]

    def index_links(self) -> dict[str, str | None]:
        """Every indexed backup and the backup its delta is relative to (None: a full)."""
        return dict(self.db.execute("SELECT backup, parent FROM file_index"))

    def index_delta(self, backup: str) -> bytes:
        row = self.db.execute("SELECT delta FROM file_index WHERE backup = ?",
                              (backup,)).fetchone()
        return zlib.decompress(row[0])
