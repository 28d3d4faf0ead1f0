"""The catalog: SQLite at ``.cya/catalog.sqlite`` in the tree root.

The tree's file names are the truth about which backups exist; the catalog
records what cannot be read from them (when a run started and ended, what
duplicity counted, which files it could not read) and, later, the archive.
Every multi-step change is one transaction. Migrations are numbered and run
in order (SQL, or a function of the connection where rows must be rewritten);
``PRAGMA user_version`` says how far a catalog has come.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cya.core import fileindex
from cya.errors import CatalogError, CyaError, from_os_error


def _index_format_2(db: sqlite3.Connection) -> None:
    """Migration 7: every file index row in format 2 (cya.core.fileindex)."""
    rows = db.execute("SELECT backup, delta FROM file_index").fetchall()
    for backup, delta in rows:
        data = zlib.decompress(delta)
        if not data.startswith(fileindex.MAGIC):
            db.execute("UPDATE file_index SET delta = ? WHERE backup = ?",
                       (zlib.compress(fileindex.upgrade(data), 6), backup))


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
    """
    CREATE TABLE bags (
        key TEXT PRIMARY KEY,           -- object key in the bucket (with the prefix)
        year TEXT NOT NULL,             -- the year level it archives, e.g. 2000/2010/2012
        digest TEXT NOT NULL,           -- core.bagging.BagSpec.digest
        size INTEGER NOT NULL,
        parts INTEGER NOT NULL,
        checksum TEXT NOT NULL,         -- S3's composite SHA-256 of the parts
        storage_class TEXT NOT NULL,
        manifest TEXT NOT NULL,         -- key of its manifest (Standard)
        uploaded_at TEXT NOT NULL       -- ISO time S3 confirmed it
    );
    CREATE TABLE blobs (
        name TEXT PRIMARY KEY,          -- duplicity file name: the identity of its bytes
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        bag TEXT NOT NULL REFERENCES bags(key),
        offset INTEGER NOT NULL,        -- of its data in the bag
        path TEXT NOT NULL              -- its tar member name
    );
    CREATE TABLE archived_years (
        year TEXT PRIMARY KEY,          -- level path
        index_key TEXT NOT NULL,        -- years/<name>.json in the bucket
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL,         -- new bytes stored for it (reused blobs excluded)
        archived_at TEXT NOT NULL
    );
    CREATE TABLE archived_files (
        path TEXT PRIMARY KEY,          -- LEVEL/files/NAME, relative to the tree root
        year TEXT NOT NULL REFERENCES archived_years(year),
        name TEXT NOT NULL REFERENCES blobs(name)
    );
    CREATE INDEX archived_files_year ON archived_files(year);
    CREATE TABLE thaws (
        bag TEXT PRIMARY KEY,
        tier TEXT NOT NULL,
        days INTEGER NOT NULL,
        requested_at TEXT NOT NULL
    );
    CREATE TABLE deferred_deletions (
        key TEXT PRIMARY KEY,           -- an object no kept year needs
        due TEXT NOT NULL               -- when deleting it costs nothing extra
    );
    """,
    """
    ALTER TABLE backups ADD COLUMN sources TEXT;  -- JSON: [[as configured, as backed up], ...]
    CREATE TABLE files (
        name TEXT PRIMARY KEY,          -- duplicity file name (one content per name in a tree)
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,           -- of the bytes when the file entered the tree
        added_at TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE archived_years ADD COLUMN state TEXT NOT NULL DEFAULT 'kept';  -- or 'pruned'
    CREATE TABLE archived_backups (
        time TEXT PRIMARY KEY,          -- duplicity time stamp
        level TEXT NOT NULL,            -- the level its chain is recorded from
        record_key TEXT NOT NULL,       -- backups/TIME.json
        index_key TEXT,                 -- indexes/TIME.gpg, its encrypted file index
        archived_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'kept'  -- or 'pruned': never uploaded again
    );
    CREATE TABLE archived_chains (
        time TEXT NOT NULL REFERENCES archived_backups(time),
        name TEXT NOT NULL,             -- a duplicity file of its chain (blobs.name)
        PRIMARY KEY (time, name)
    );
    CREATE TABLE pruned_blobs (
        name TEXT PRIMARY KEY,          -- a file whose bag the remote retention deleted
        size INTEGER NOT NULL,
        pruned_at TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE backups ADD COLUMN metadata TEXT;  -- where the backup holds cya's metadata dir
    """,
    # file_index.delta: zlib of core.fileindex format 2 (type, mode, owner, marks; names
    # as bytes) from here on; format 1 rows are converted
    _index_format_2,
)


def _packed(index: bytes) -> bytes:
    """A file index delta as the catalog stores it: zlib. A backup writes it compressed
    already; one that an older cya left in staging is plain (format 1 or 2)."""
    if not index or index.startswith((fileindex.MAGIC, b"[")):
        return zlib.compress(index, 6)
    return index


def damaged(path: Path, error: Exception) -> CatalogError:
    return CatalogError(f"the catalog {path} is damaged ({error})",
                        "rebuild it from the tree: cya init --adopt (the damaged file is "
                        "kept beside it)")


def _write_error(path: Path, error: sqlite3.OperationalError) -> CyaError:
    text = str(error)
    if "disk is full" in text:
        return from_os_error(OSError(errno.ENOSPC, text, str(path)), "write the catalog")
    if "readonly" in text or "read-only" in text:
        return from_os_error(OSError(errno.EROFS, text, str(path)), "write the catalog")
    if "locked" in text:
        return CyaError(f"the catalog {path} is locked by another program ({text})",
                        "try again later")
    return damaged(path, error)


SYSTEM_COPIED = "system_copied_at"  # meta key: when system/ was last copied to the bucket
ARCHIVE_DAMAGE = "archive_damage"  # meta key: JSON of what the bucket lost, or absent
CHECK_ROTATION = "check_rotation"  # meta key: where the next ``cya check --read-data-subset P%``
                                   # starts on the circle of name points (core.integrity)
CHECK_DAMAGE = "check_damage"  # meta key: JSON list of the duplicity names the last
                               # ``cya check`` found damaged or missing (what ``cya repair`` fixes)


@dataclass(frozen=True)
class BagRecord:
    key: str
    year: str
    digest: str
    size: int
    parts: int
    checksum: str
    storage_class: str
    manifest: str
    uploaded_at: str


@dataclass(frozen=True)
class BlobRecord:
    name: str
    sha256: str
    size: int
    bag: str
    offset: int
    path: str


@dataclass(frozen=True)
class YearRecord:
    year: str
    index_key: str
    files: int
    bytes: int
    archived_at: str
    state: str = "kept"


@dataclass(frozen=True)
class PointRecord:
    """An archived backup: where its record is and the files of its chain."""

    time: str
    level: str
    record_key: str
    index_key: str | None
    archived_at: str
    state: str
    names: tuple[str, ...]


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
    sources: str | None = None  # JSON: [[as configured, as backed up], ...]
    metadata: str | None = None  # the absolute path of the metadata dir the backup holds


class Catalog:
    """The tree's catalog. Open it with ``Catalog.open`` (an existing catalog, read-only
    for readers) or ``Catalog.create`` (``cya init``); nothing else makes one, so a lost
    catalog is reported, never silently replaced by an empty one with a new identity."""

    def __init__(self, path: Path, db: sqlite3.Connection, writable: bool):
        self.path = path
        self.db = db
        self.writable = writable

    @classmethod
    def open(cls, path: Path, write: bool = True) -> Catalog:
        """Open an existing catalog; with ``write`` bring its schema up to date.

        Raise CatalogError if it is missing, damaged or (read-only) older than this cya.
        A read-only catalog is opened so that nothing is ever written: it works on a
        read-only file system and on a copy of a tree.
        """
        if not path.is_file():
            raise CatalogError(f"the catalog {path} is missing",
                               "rebuild it from the tree: cya init --adopt")
        try:
            # a reader may record (thaws) while a backup writes: wait for SQLite's lock
            if write:
                db = sqlite3.connect(path, isolation_level=None, timeout=60)
            else:
                db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                     isolation_level=None, timeout=60)
        except sqlite3.Error as error:
            raise damaged(path, error) from None
        catalog = cls(path, db, write)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if write:
                db.execute("PRAGMA synchronous=FULL")
                catalog._migrate(version)
            elif version < len(MIGRATIONS):
                db.close()
                raise CatalogError(f"the catalog {path} was written by an older cya",
                                   "run a command that writes (cya backup or cya trim) "
                                   "once to bring it up to date")
            if catalog.get_meta("tree_id") is None:
                raise sqlite3.DatabaseError("it has no tree id")
        except sqlite3.OperationalError as error:
            db.close()
            if "disk is full" in str(error) or "readonly" in str(error):
                raise _write_error(path, error) from None
            raise damaged(path, error) from None
        except sqlite3.DatabaseError as error:
            db.close()
            raise damaged(path, error) from None
        return catalog

    @classmethod
    def create(cls, path: Path) -> Catalog:
        """Make a new, empty catalog with a new tree id (``cya init``). Raise FileExistsError
        if one exists."""
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlite3.connect(path, isolation_level=None, timeout=60)
        catalog = cls(path, db, True)
        db.execute("PRAGMA synchronous=FULL")
        catalog._migrate(0)
        catalog.set_meta("tree_id", secrets.token_hex(8))
        return catalog

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; a failure rolls it back (when SQLite has not already) and a
        full disk or a damaged file becomes one CyaError line."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise _write_error(self.path, error) from None
        except sqlite3.DatabaseError as error:
            raise damaged(self.path, error) from None

    def _migrate(self, version: int) -> None:
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as db:
                if callable(script):
                    script(db)
                else:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def tree_id(self) -> str:
        return self.get_meta("tree_id") or ""

    def record_backup(self, record: BackupRecord, index: bytes | None = None,
                      files: list[tuple[str, int, str]] = ()) -> None:
        """Record a finished backup, its file index delta (if given: as the backup wrote
        it, zlib-compressed, or plain from an older cya) and the size and SHA-256 of the
        duplicity files it added, in one transaction."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO backups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.time, record.leaf, record.base, int(record.full), record.new_levels,
                 record.started_at, record.finished_at, record.source_files,
                 record.source_bytes, record.new_bytes, record.unreadable, record.parent,
                 record.sources, record.metadata),
            )
            db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?)",
                           [(name, size, digest, record.finished_at)
                            for name, size, digest in files])
            if index is not None:
                db.execute("INSERT OR REPLACE INTO file_index VALUES (?,?,?)",
                           (record.time, record.parent, _packed(index)))

    def digests(self) -> dict[str, tuple[int, str]]:
        """Every duplicity file whose SHA-256 was recorded when it entered the tree:
        name -> (size, SHA-256)."""
        return {row[0]: (row[1], row[2])
                for row in self.db.execute("SELECT name, size, sha256 FROM files")}

    def record_digests(self, files: list[tuple[str, int, str]], when: str) -> int:
        """Record (name, size, SHA-256) of duplicity files that entered the tree without
        them (an adopted tree, one made by an older cya): ``cya check --record``. A name
        already recorded keeps its row. Return how many rows were added."""
        with self.transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO files VALUES (?,?,?,?)",
                           [(name, size, digest, when) for name, size, digest in files])
            return db.total_changes - before

    def backups(self) -> list[BackupRecord]:
        rows = self.db.execute("SELECT * FROM backups ORDER BY time").fetchall()
        return [BackupRecord(r[0], r[1], r[2], bool(r[3]), *r[4:]) for r in rows]

    def backup(self, time: str) -> BackupRecord | None:
        row = self.db.execute("SELECT * FROM backups WHERE time = ?", (time,)).fetchone()
        return BackupRecord(row[0], row[1], row[2], bool(row[3]), *row[4:]) if row else None

    def parents(self) -> dict[str, str | None]:
        """Every recorded backup and the backup it diffed against (None: a full)."""
        return dict(self.db.execute("SELECT time, parent FROM backups"))

    def index_links(self) -> dict[str, str | None]:
        """Every indexed backup and the backup its delta is relative to (None: a full)."""
        return dict(self.db.execute("SELECT backup, parent FROM file_index"))

    def index_delta(self, backup: str) -> bytes:
        row = self.db.execute("SELECT delta FROM file_index WHERE backup = ?",
                              (backup,)).fetchone()
        return zlib.decompress(row[0])

    def forget_indexes(self, backups: Collection[str]) -> None:
        """Drop the file index rows of these backups (the trim's: the tree no longer holds
        them, and the bucket, where archiving is on, holds its own encrypted copy)."""
        if not backups:
            return
        with self.transaction() as db:
            db.executemany("DELETE FROM file_index WHERE backup = ?",
                           [(time,) for time in sorted(backups)])

    # The archive -----------------------------------------------------------------

    def record_bag(self, bag: BagRecord, blobs: list[BlobRecord]) -> None:
        """Record a bag S3 confirmed, with the blobs it stores, in one transaction."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO bags VALUES (?,?,?,?,?,?,?,?,?)",
                       (bag.key, bag.year, bag.digest, bag.size, bag.parts, bag.checksum,
                        bag.storage_class, bag.manifest, bag.uploaded_at))
            db.executemany("INSERT OR REPLACE INTO blobs VALUES (?,?,?,?,?,?)",
                           [(b.name, b.sha256, b.size, b.bag, b.offset, b.path) for b in blobs])

    def record_year(self, year: YearRecord, files: dict[str, str]) -> None:
        """Record an archived year and where each of its files (path -> name) lives."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO archived_years VALUES (?,?,?,?,?,?)",
                       (year.year, year.index_key, year.files, year.bytes, year.archived_at,
                        year.state))
            db.executemany("INSERT OR REPLACE INTO archived_files VALUES (?,?,?)",
                           [(path, year.year, name) for path, name in sorted(files.items())])

    def record_point(self, point: PointRecord) -> None:
        """Record an archived backup and its chain's files, in one transaction."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO archived_backups VALUES (?,?,?,?,?,?)",
                       (point.time, point.level, point.record_key, point.index_key,
                        point.archived_at, point.state))
            db.execute("DELETE FROM archived_chains WHERE time = ?", (point.time,))
            db.executemany("INSERT INTO archived_chains VALUES (?,?)",
                           [(point.time, name) for name in point.names])

    def points(self, state: str | None = "kept") -> list[PointRecord]:
        """Archived backups (``state`` None: pruned ones too), oldest first."""
        chains: dict[str, list[str]] = {}
        for time, name in self.db.execute("SELECT time, name FROM archived_chains"):
            chains.setdefault(time, []).append(name)
        rows = self.db.execute("SELECT * FROM archived_backups ORDER BY time")
        return [PointRecord(*row, names=tuple(sorted(chains.get(row[0], ()))))
                for row in rows if state is None or row[5] == state]

    def archived_sizes(self) -> dict[str, int]:
        """Every archived duplicity name and its size."""
        return dict(self.db.execute("SELECT name, size FROM blobs"))

    def pruned_sizes(self) -> dict[str, int]:
        """Every duplicity name whose bag the remote retention deleted: never sent again."""
        return dict(self.db.execute("SELECT name, size FROM pruned_blobs"))

    def archived_year_paths(self, state: str | None = None) -> set[str]:
        """Year levels with a year record (``state``: only kept or only pruned ones)."""
        return {row[0] for row in self.db.execute("SELECT year, state FROM archived_years")
                if state is None or row[1] == state}

    def archived_years(self, state: str | None = "kept") -> list[YearRecord]:
        rows = self.db.execute("SELECT * FROM archived_years ORDER BY year")
        return [YearRecord(*row) for row in rows if state is None or row[5] == state]

    def archived_files(self, year: str | None = None) -> list[tuple[str, BlobRecord]]:
        """(path, blob) of every file of the kept archived years, or of one year's."""
        query = ("SELECT f.path, b.* FROM archived_files f JOIN blobs b ON b.name = f.name "
                 "JOIN archived_years y ON y.year = f.year WHERE y.state = 'kept'"
                 + (" AND f.year = ?" if year else "") + " ORDER BY f.path")
        rows = self.db.execute(query, (year,) if year else ())
        return [(row[0], BlobRecord(*row[1:])) for row in rows]

    def year_files(self, year: str) -> dict[str, str]:
        """path -> duplicity name of one year record's files (whether or not stored)."""
        return dict(self.db.execute("SELECT path, name FROM archived_files WHERE year = ?",
                                    (year,)))

    def bags(self) -> list[BagRecord]:
        return [BagRecord(*row) for row in self.db.execute("SELECT * FROM bags ORDER BY key")]

    def blobs(self) -> dict[str, BlobRecord]:
        """Every archived blob by its duplicity name."""
        return {row[0]: BlobRecord(*row) for row in self.db.execute("SELECT * FROM blobs")}

    def thaws(self) -> dict[str, tuple[str, int, str]]:
        """bag -> (tier, days, requested_at) of every thaw cya asked for."""
        return {row[0]: tuple(row[1:]) for row in self.db.execute("SELECT * FROM thaws")}

    def record_thaw(self, bag: str, tier: str, days: int, requested_at: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO thaws VALUES (?,?,?,?)",
                       (bag, tier, days, requested_at))

    def forget_thaws(self, bags: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM thaws WHERE bag = ?", [(b,) for b in bags])

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None, remove) a meta value."""
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def copy_without_index(self, target: Path) -> None:
        """Write a consistent copy of the catalog to ``target`` without what names the
        user's files (the file index, the sources): what goes to the bucket's system/."""
        copy = sqlite3.connect(target)
        try:
            self.db.backup(copy)
            copy.execute("DELETE FROM file_index")
            copy.execute("UPDATE backups SET sources = NULL")
            copy.commit()
            copy.execute("VACUUM")
        finally:
            copy.close()

    def drop_points(self, backups: list[str], years: list[str],
                    queue: list[tuple[str, str]]) -> None:
        """Mark archived backups and years pruned and queue objects for deletion (key, due
        ISO time), in one transaction: the queue is the record of what still has to go
        from the bucket, and a pruned point is never archived again."""
        with self.transaction() as db:
            db.executemany("UPDATE archived_backups SET state = 'pruned' WHERE time = ?",
                           [(t,) for t in backups])
            db.executemany("UPDATE archived_years SET state = 'pruned' WHERE year = ?",
                           [(y,) for y in years])
            db.executemany("INSERT OR IGNORE INTO deferred_deletions VALUES (?, ?)", queue)

    def deletions(self) -> list[tuple[str, str]]:
        """(key, due) of every object queued for deletion."""
        return list(self.db.execute("SELECT key, due FROM deferred_deletions ORDER BY key"))

    def deleted(self, key: str, when: str) -> None:
        """An object is gone from the bucket by the retention's choice: drop its queue row,
        and for a bag its records, its files remembered as pruned (never sent again)."""
        with self.transaction() as db:
            db.execute("DELETE FROM deferred_deletions WHERE key = ?", (key,))
            db.execute("INSERT OR REPLACE INTO pruned_blobs SELECT name, size, ? FROM blobs "
                       "WHERE bag = ?", (when, key))
            db.execute("DELETE FROM blobs WHERE bag = ?", (key,))
            db.execute("DELETE FROM thaws WHERE bag = ?", (key,))
            db.execute("DELETE FROM bags WHERE key = ?", (key,))

    def forget_bags(self, keys: list[str]) -> None:
        """Bags the bucket no longer holds (lost, not pruned): forget them and their files,
        so that files the tree still holds are archived again."""
        with self.transaction() as db:
            for key in keys:
                db.execute("DELETE FROM blobs WHERE bag = ?", (key,))
                db.execute("DELETE FROM thaws WHERE bag = ?", (key,))
                db.execute("DELETE FROM bags WHERE key = ?", (key,))
