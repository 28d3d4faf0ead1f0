"""Reading the tree for people: what is restorable, and what each backup holds.

Everything here reads; nothing writes to the tree. File lists come from the
catalog's per-backup index (or the bucket's encrypted copy of it, for backups only
the archive holds); for backups made before the index existed, from
``duplicity list-current-files`` (which decrypts, so it is the slow path).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cya.catalog import Catalog
from cya.config import Settings, read_passphrase
from cya.core import fileindex
from cya.core.chains import Restorable, restorable
from cya.core.names import format_time
from cya.core.treeview import TreeView
from cya.errors import ArchiveError
from cya.fsutil import remove_tree
from cya.runs import Run, cache_base
from cya.tree import Tree

if TYPE_CHECKING:
    from cya.gpg import Gpg  # imported when a backup only the archive holds is read


class FileLister:
    """The files backups hold that ``keep`` accepts. Each backup's index delta is read
    and filtered once, however many chains share it: from the catalog, or — for a
    backup only the archive holds — from its encrypted index in the bucket (Standard,
    no thaw), decrypted in memory. A record is decoded only when it is shown."""

    def __init__(self, tree: Tree, catalog: Catalog, settings: Settings,
                 keep: fileindex.Keep):
        self.tree, self.catalog, self.settings, self.keep = tree, catalog, settings, keep
        self.links = catalog.index_links()
        self.parents = catalog.parents()
        self.remote_indexes = ({p.time: p.index_key for p in catalog.points() if p.index_key}
                               if settings.archive.enabled else {})
        self.filtered: dict[str, fileindex.Delta] = {}
        self._last: tuple[list[str], fileindex.Files] | None = None  # the last chain listed
        self._entries: dict[tuple[bytes, bytes, bytes], fileindex.Entry] = {}
        self._remote = None
        self._gpg: Gpg | None = None

    def __enter__(self) -> FileLister:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._gpg is not None:
            self._gpg.close()

    def chain(self, time: str) -> list[str] | None:
        """Backups from the full up to ``time``, or None if one has no index."""
        chain: list[str] = []
        current: str | None = time
        while current is not None:
            if current in self.links:
                chain.append(current)
                current = self.links[current]
            elif current in self.remote_indexes and current in self.parents:
                chain.append(current)
                current = self.parents[current]
            else:
                return None
        return chain[::-1]

    def delta(self, backup: str) -> fileindex.Delta:
        if backup not in self.filtered:
            data = (self.catalog.index_delta(backup) if backup in self.links
                    else self._fetch(backup))
            self.filtered[backup] = fileindex.select(data, self.keep)
        return self.filtered[backup]

    def _fetch(self, backup: str) -> bytes:
        """A backup's file index from the bucket, decrypted."""
        from cya.archive.s3 import Remote
        from cya.gpg import Gpg

        if self._remote is None:
            self._remote = Remote(self.settings.archive)
            self._gpg = Gpg(self.settings, read_passphrase(self.settings))
        key = self.remote_indexes[backup]
        data = self._remote.get_bytes(key)
        if data is None:
            raise ArchiveError(f"the file index {key} is missing from the bucket",
                               "run: cya archive verify")
        return self._gpg.decrypt(data)

    def applied(self, chain: list[str]) -> fileindex.Files:
        """The file list after ``chain``'s deltas (not to be changed). ``find`` lists
        backups oldest first, and a backup's chain mostly extends the one before: that
        list is copied and only the newer deltas are applied."""
        files, done = None, 0
        if self._last is not None and chain[:len(self._last[0])] == self._last[0]:
            done = len(self._last[0])
            if done == len(chain):
                return self._last[1]
            files = dict(self._last[1])
        files = fileindex.apply((self.delta(b) for b in chain[done:]), files)
        self._last = (chain, files)
        return files

    def files(self, backup: Restorable, archived: bool = False
              ) -> tuple[list[fileindex.Entry], bool]:
        """The files, sorted by path, and whether the index said so (False: listed by
        duplicity, no sizes; a backup only the archive holds and without an index lists
        nothing)."""
        found, from_index = self.listing(backup, archived)
        return list(map(self._entry, found.metas, found.paths, found.targets)), from_index

    def _entry(self, meta: bytes, path: bytes, target: bytes) -> fileindex.Entry:
        """One record as an Entry, made once however many backups hold it (a broad
        ``find`` lists the same records for backup after backup)."""
        key = (meta, path, target)
        made = self._entries.get(key)
        if made is None:
            made = self._entries[key] = fileindex.entry(path, meta, target)
        return made

    def listing(self, backup: Restorable, archived: bool = False
                ) -> tuple[fileindex.Delta, bool]:
        """``files`` as index records sorted by path, decoded by nobody yet."""
        chain = self.chain(format_time(backup.time))
        if chain is not None:
            return fileindex.listing(self.applied(chain)), True
        if archived:
            return fileindex.Delta([], [], []), False
        listed = list_with_duplicity(self.tree, self.settings, backup)
        found = {path: (fileindex.record_meta("A", kind, mtime=int(mtime.timestamp())
                                              if mtime else None), b"")
                 for path, kind, mtime in ((fileindex.fsencode(p), k, m) for p, k, m in listed)
                 if self.keep(path)}
        return fileindex.listing(found), False


def unused_indexes(view: TreeView, catalog: Catalog, archiving: bool) -> set[str]:
    """The backups whose file index rows no command can use any more: no level of the
    tree holds a set of them (complete or not) and, with archiving on, the bucket
    either holds its own encrypted copy of the index (``find`` and ``ls`` fetch it) or
    cannot restore them at all. A row the bucket would need, and does not have, stays."""
    held = {format_time(s.time) for level in view.levels() for s in view.sets(level)}
    gone = set(catalog.index_links()) - held
    if not archiving or not gone:
        return gone
    from cya.archive.retrieve import archived_view

    copied = {point.time for point in catalog.points() if point.index_key}
    restorable_remotely = {format_time(b.time) for b in restorable(archived_view(catalog))}
    return {time for time in gone if time in copied or time not in restorable_remotely}


def list_with_duplicity(tree: Tree, settings: Settings, backup: Restorable):
    from cya import duplicity

    passphrase = read_passphrase(settings)
    with private_tempdir() as work, duplicity.Duplicity(settings, passphrase) as runner:
        from cya.actions.restore import chain_view

        source = chain_view(tree.files_dir(backup.level), backup, work / "chain")
        argv = duplicity.reading_argv("list-current-files", settings=settings,
                                      source=source, time=backup.time, work=work)
        outcome = runner.run(argv, work / "duplicity.log", doing="list a backup's files")
        return duplicity.listed_files(outcome.records)


@contextmanager
def private_tempdir() -> Iterator[Path]:
    """A 0700 directory under the user cache dir (duplicity's decrypted metadata goes
    there), removed afterwards — and, if cya is killed, by the next command
    (cya/runs.py)."""
    work = Run.current().own(cache_base() / f"work-{secrets.token_hex(6)}")
    work.mkdir(mode=0o700)
    try:
        yield work
    finally:
        remove_tree(work)
        Run.current().disown(work)


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

