"""Reading the tree for people: what is restorable, and what each backup holds.

Everything here reads; nothing writes to the tree. File lists come from the
catalog's per-backup index; for backups made before the index existed, from
``duplicity list-current-files`` (which decrypts, so it is the slow path).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import platformdirs

from cya import duplicity, execute
from cya.catalog import Catalog
from cya.config import Settings, read_passphrase
from cya.core import fileindex
from cya.core.chains import Restorable
from cya.core.names import format_time
from cya.tree import Tree


class FileLister:
    """The files backups hold that ``keep`` accepts. Each backup's index delta is read
    and filtered once, however many chains share it."""

    def __init__(self, tree: Tree, catalog: Catalog, settings: Settings,
                 keep: Callable[[str], bool]):
        self.tree, self.catalog, self.settings, self.keep = tree, catalog, settings, keep
        self.links = catalog.index_links()
        self.filtered: dict[str, list[fileindex.Change]] = {}

    def chain(self, time: str) -> list[str] | None:
        """Backups from the full up to ``time``, or None if one has no index."""
        chain: list[str] = []
        current: str | None = time
        while current is not None:
            if current not in self.links:
                return None
            chain.append(current)
            current = self.links[current]
        return chain[::-1]

    def delta(self, backup: str) -> list[fileindex.Change]:
        if backup not in self.filtered:
            self.filtered[backup] = [c for c in fileindex.decode(self.catalog.index_delta(backup))
                                     if self.keep(c.entry.path)]
        return self.filtered[backup]

    def files(self, backup: Restorable) -> tuple[dict[str, fileindex.Entry], bool]:
        """The files and whether the index said so (False: listed by duplicity, no sizes)."""
        chain = self.chain(format_time(backup.time))
        if chain is not None:
            return fileindex.apply((self.delta(b) for b in chain), self.keep), True
        listed = list_with_duplicity(self.tree, self.settings, backup)
        return {path: fileindex.Entry(path, kind, None,
                                      int(mtime.timestamp()) if mtime else None)
                for path, kind, mtime in listed if self.keep(path)}, False


def list_with_duplicity(tree: Tree, settings: Settings, backup: Restorable):
    passphrase = read_passphrase(settings)
    with private_tempdir() as work:
        log_file = work / "duplicity.log"
        argv = duplicity.reading_argv("list-current-files", settings=settings,
                                      source=tree.files_dir(backup.level), time=backup.time,
                                      work=work, log_file=log_file)
        done = execute.run(argv, env=duplicity.environment(passphrase), secrets=[passphrase or ""])
        records = duplicity.parse_log(log_file.read_text(errors="replace")) \
            if log_file.exists() else []
        if done.returncode != 0:
            raise duplicity.failure(done.returncode, records, done.tail, settings)
        return duplicity.listed_files(records)


@contextmanager
def private_tempdir() -> Iterator[Path]:
    """A 0700 directory under the user cache dir (duplicity's decrypted metadata goes
    there), removed afterwards."""
    base = Path(platformdirs.user_cache_dir("cya"))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=base, prefix="work-") as work:
        yield Path(work)


def show_gap(asked: datetime, got: datetime) -> str:
    """How far a restored backup is from the asked date, in words."""
    seconds = (asked - got).total_seconds()
    if seconds < 60:
        return "the same time"
    if seconds < 3600:
        return f"{int(seconds // 60)} minutes earlier"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} hours earlier"
    return f"{int(seconds // 86400)} days earlier"

