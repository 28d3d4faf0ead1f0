"""``cya ls``: the timescale tree, or (``--date``) the files a backup holds.

Neither form starts duplicity for backups that have a file index: the tree view
comes from file names and ``lstat``, file lists from the catalog.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from cya.actions.find import archive_only, restore_cost
from cya.browse import FileLister
from cya.clock import show_time
from cya.config import Settings
from cya.core import fileindex
from cya.core.chains import Restorable, choose, restorable
from cya.core.names import format_time
from cya.core.retention import eligible
from cya.core.timescale import Level
from cya.errors import CyaError
from cya.opentree import open_tree
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
            "backups": [{"time": format_time(t), "full": full} for t, full in self.backups],
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
        return {"tree": self.tree, "restorable_backups": self.restorable,
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
    files: tuple[fileindex.Entry, ...]
    from_index: bool
    archive_cost: float | None = None  # only the archive holds it: about this to restore

    def as_json(self) -> dict:
        return {
            "version": 1,
            "asked": self.asked.isoformat(),
            "backup": format_time(self.backup.time),
            "level": str(self.backup.level),
            "sizes_known": self.from_index,
            "archive_only": self.archive_cost is not None,
            "archive_cost_usd": (round(self.archive_cost, 2)
                                 if self.archive_cost is not None else None),
            "files": [e.as_json() for e in self.files],
        }

    def lines(self) -> list[str]:
        """``ls -l``-like lines, local times: mode, owner, group, size, mtime, marks, path
        (``/`` after a directory, ``@ TARGET`` after a symlink). A mark column shows what
        cya's metadata keeps beyond duplicity: ``a`` ACL, ``x`` xattrs, ``h`` hard links,
        ``s`` holes; ``?`` where the index does not say (made before it did)."""
        files = self.files
        owners = max((len(e.owner) for e in files if e.owner), default=1)
        groups = max((len(e.group) for e in files if e.group), default=1)
        minutes: dict[int, str] = {}
        out = []
        for entry in files:
            if entry.mode is not None:
                mode, marks = fileindex.filemode(entry.mode), _mark_column(entry.marks)
            else:
                mode, marks = "?" * 10, "????"
            size = "" if entry.size is None else size_text(entry.size)
            mtime = ""
            if entry.mtime is not None:
                minute = entry.mtime // 60
                mtime = minutes.get(minute)
                if mtime is None:
                    mtime = minutes[minute] = time.strftime("%Y-%m-%d %H:%M",
                                                            time.localtime(entry.mtime))
            name = fileindex.shown(entry.path)
            if entry.type == "dir" and entry.path != b".":
                name += "/"
            elif entry.target is not None:
                name += " @ " + fileindex.escaped(entry.target)
            out.append(f"{mode} {entry.owner or '?':<{owners}} {entry.group or '?':<{groups}} "
                       f"{size:>9}  {mtime:16}  {marks}  {name}")
        return out


def _mark_column(marks: str) -> str:
    return "".join(letter if letter in marks else "-" for letter in fileindex.MARK_NAMES)


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
    with open_tree(settings, write=False, locked=False) as opened, \
            FileLister(opened.tree, opened.catalog, settings,
                       fileindex.under(path or "")) as lister:
        backup = choose(opened.view, asked)
        cost = None
        nearer = [b for b in archive_only(opened, ())
                  if b.time <= asked and (backup is None or b.time > backup.time)]
        if nearer:
            backup, cost = nearer[-1], restore_cost(opened, nearer[-1])
        if backup is None:
            raise CyaError(f"no backup at or before {show_time(asked)}",
                           "see what there is with: cya ls")
        files, from_index = lister.files(backup, archived=cost is not None)
    if path and not files:
        raise CyaError(f"{path} is not in the backup of {show_time(backup.time)}",
                       "list the whole backup with: cya ls --date D")
    return FileListing(asked, backup, tuple(files), from_index, cost)
