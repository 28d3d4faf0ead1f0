"""``cya ls``: the timescale tree, or (``--date``) the files a backup holds.

Neither form starts duplicity for backups that have a file index: the tree view
comes from file names and ``lstat``, file lists from the catalog.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from operator import itemgetter

from cya.actions.find import archive_only, restore_cost
from cya.browse import FileLister
from cya.clock import iso, show_time
from cya.config import Settings
from cya.core import fileindex
from cya.core.chains import Restorable, choose, restorable
from cya.core.retention import eligible
from cya.core.timescale import Level
from cya.errors import CyaError
from cya.opentree import open_tree
from cya.sshfs import RemoteNames
from cya.tree import level_of


@dataclass(frozen=True)
class LevelListing:
    level: Level
    backups: tuple[tuple[datetime, bool], ...]  # (time, full) in chain order
    unique_bytes: int
    archive: str | None = None  # "archived", "awaiting" (a finished year), or None

    def as_json(self) -> dict:
        return {
            "level": str(self.level),
            "kind": self.level.kind,
            "chain_length": len(self.backups),
            "backups": [{"time": iso(t), "full": full} for t, full in self.backups],
            "unique_bytes": self.unique_bytes,
            "archive": self.archive,
        }


@dataclass(frozen=True)
class TreeListing:
    tree: str
    levels: tuple[LevelListing, ...]
    restorable: int
    total_bytes: int
    archive_only: tuple[str, ...] = ()  # archived years no longer in the tree

    def as_json(self) -> dict:
        return {"version": 1, "tree": self.tree, "restorable_backups": self.restorable,
                "total_bytes": self.total_bytes,
                "levels": [level.as_json() for level in self.levels],
                "archive_only_years": list(self.archive_only)}


def tree_listing(settings: Settings) -> TreeListing:
    with open_tree(settings, write=False, locked=False) as opened:
        view = opened.view
        catalog = opened.catalog
        archived = catalog.archived_year_paths(state="kept")
        stored = set(catalog.archived_sizes()) | set(catalog.pruned_sizes())
        root = str(opened.tree.root)
    due = set(eligible(view, settings.archive.cadence)) if settings.archive.enabled else set()

    def state(level: Level) -> str | None:
        """"archived": the bucket holds every file of it; "awaiting": due and not all
        sent; None: not due yet (or archiving is off)."""
        if not settings.archive.enabled:
            return None
        if view.files.get(level, frozenset()) <= stored:
            return "archived"
        return "awaiting" if level in due else None

    levels = tuple(
        LevelListing(level, tuple((s.time, s.full) for s in view.backups(level)),
                     view.unique_bytes(level), state(level))
        for level in view.levels())
    only = tuple(sorted(year for year in archived if level_of(year) not in view.files))
    return TreeListing(root, levels, len(restorable(view)), view.total_bytes(), only)


@dataclass(frozen=True)
class FileListing:
    asked: datetime
    backup: Restorable
    listing: fileindex.Delta  # index records, sorted by path
    from_index: bool
    archive_cost: float | None = None  # only the archive holds it: about this to restore
    names: RemoteNames = RemoteNames({})  # remote sources' paths as the user spells them

    @cached_property
    def files(self) -> tuple[fileindex.Entry, ...]:
        return tuple(self.listing.entries())

    def as_json(self) -> dict:
        return {
            "version": 1,
            "asked": iso(self.asked),
            "backup": iso(self.backup.time),
            "level": str(self.backup.level),
            "sizes_known": self.from_index,
            "archive_only": self.archive_cost is not None,
            "archive_cost_usd": (round(self.archive_cost, 2)
                                 if self.archive_cost is not None else None),
            "files": [self.names.entry_json(e) for e in self.files],
        }

    def lines(self) -> list[str]:
        """``ls -l``-like lines, local times: mode, owner, group, size, mtime, marks, path
        (``/`` after a directory, ``@ TARGET`` after a symlink). The mark column shows
        what cya's metadata keeps beyond duplicity: ``a`` ACL, ``x`` xattrs, ``h`` hard
        links, ``s`` holes; ``?`` where the index does not say (made before it did).

        Made straight from the index records, a column at a time: each distinct mode,
        owner, size or minute is turned into text once, and the rest runs in C (a
        whole backup of 100,000 files is a few hundred milliseconds)."""
        with _no_collection():
            return self._lines()

    def _lines(self) -> list[str]:
        paths, metas, targets = self.listing.paths, self.listing.metas, self.listing.targets
        if not paths:
            return []
        flat = b" ".join(metas).split(b" ")
        if len(flat) != 7 * len(metas):  # a record that says little (gone, format 1)
            metas = tuple(meta if meta.count(b" ") == 6 else meta[:2] + b" - - - - - -"
                          for meta in metas)
            flat = b" ".join(metas).split(b" ")
        codes, modes, owners, groups, sizes, mtimes, marks = (flat[i::7] for i in range(7))
        # each distinct value as its column's text, separators included; a line is then
        # the join of its columns' texts (in C: four times faster than a format call)
        columns = {key: _columns(*key) for key in set(zip(modes, marks, strict=True))}
        mode_marks = list(map(columns.__getitem__, zip(modes, marks, strict=True)))
        owner_text = {name: _who(name) for name in set(owners)}
        group_text = {name: _who(name) for name in set(groups)}
        for texts in (owner_text, group_text):
            width = max(map(len, texts.values()))
            texts.update((name, text.ljust(width) + " ") for name, text in list(texts.items()))
        size_texts = {size: ("" if size == b"-" else size_text(int(size))).rjust(9) + "  "
                      for size in set(sizes)}
        minutes = {mtime: ("" if mtime == b"-" else _minute(int(mtime) // 60)).ljust(16) + "  "
                   for mtime in set(mtimes)}
        names = _names(paths)
        if self.names.mapping:
            names = list(map(self.names.shown, names))
        # a CHANGE and a TYPE letter each: every record's type in one string, where what
        # is not a plain file is found in C
        for found in _NOT_A_FILE.finditer(b"".join(codes)[1::2]):
            i = found.start()
            if found[0] == b"d" and paths[i] != b".":
                names[i] += "/"
            elif found[0] == b"l" and targets[i]:
                names[i] += " @ " + fileindex.escaped(targets[i])
        return list(map("".join, zip(map(itemgetter(0), mode_marks),
                                     map(owner_text.__getitem__, owners),
                                     map(group_text.__getitem__, groups),
                                     map(size_texts.__getitem__, sizes),
                                     map(minutes.__getitem__, mtimes),
                                     map(itemgetter(1), mode_marks), names, strict=True)))


@contextmanager
def _no_collection() -> Iterator[None]:
    """No cyclic garbage collection for a while: listing a whole backup makes hundreds
    of thousands of short-lived tuples and lists (no cycles), and the collector would
    scan them all again and again (a tenth of the time of ``ls`` of 100,000 files)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _names(paths: list[bytes]) -> list[str]:
    """Each path as ``shown`` prints it (all at once when none needs escaping)."""
    joined = b"\0".join(paths)
    if joined.isascii():
        text = joined.decode()
        if "\\" not in text and text.replace("\0", "").isprintable():
            names = ("/" + text.replace("\0", "\0/")).split("\0")
            if b"." in paths:
                names[paths.index(b".")] = "/"
            return names
    return [fileindex.shown(path) for path in paths]


_NOT_A_FILE = re.compile(rb"[^f]")


def _who(name: bytes) -> str:
    return "?" if name == b"-" else name.decode("utf-8", "replace")


@lru_cache(maxsize=65536)
def _minute(minute: int) -> str:
    """A minute since the epoch in local time (offsets are whole minutes)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(minute * 60))


@lru_cache(maxsize=1024)
def _columns(mode: bytes, marks: bytes) -> tuple[str, str]:
    """The mode and mark columns with the spaces after them (``?`` where the index does
    not say)."""
    if mode == b"-":
        return "?" * 10 + " ", "?" * len(fileindex.MARK_NAMES) + "  "
    present = marks.decode()
    return (fileindex.filemode(int(mode, 8)) + " ",
            "".join(letter if letter in present else "-" for letter in fileindex.MARK_NAMES)
            + "  ")


def size_text(count: float) -> str:
    """A size as cya prints it everywhere (decimal units: 999 B, 1.5 kB, 2.3 GB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} B"


def file_listing(settings: Settings, asked: datetime, path: str | None) -> FileListing:
    """The files of the newest backup at or before ``asked`` (from the archive's
    encrypted index when only the archive holds it, or holds a nearer one)."""
    names = RemoteNames.of(settings.remote_sources)
    asked_path, path = path, names.local(path) if path else path
    with open_tree(settings, write=False, locked=False) as opened, \
            FileLister(opened.tree, opened.catalog, settings,
                       fileindex.under(path or "")) as lister, _no_collection():
        backup = choose(opened.view, asked)
        cost = None
        nearer = [b for b in archive_only(opened, ())
                  if b.time <= asked and (backup is None or b.time > backup.time)]
        if nearer:
            backup, cost = nearer[-1], restore_cost(opened, nearer[-1])
        if backup is None:
            raise CyaError(f"no backup at or before {show_time(asked)}",
                           "see what there is with: cya ls")
        found, from_index = lister.listing(backup, archived=cost is not None)
    if path and not found:
        raise CyaError(f"{asked_path} is not in the backup of {show_time(backup.time)}",
                       "list the whole backup with: cya ls --date D")
    return FileListing(asked, backup, found, from_index, cost, names)
