"""``cya ls``: the timescale tree, or (``--date``) the files a backup holds.

Neither form starts duplicity for backups that have a file index: the tree view
comes from file names and ``lstat``, file lists from the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
    files: tuple[fileindex.Entry, ...]
    from_index: bool
    archive_cost: float | None = None  # only the archive holds it: about this to restore

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
            "files": [e.as_json() for e in self.files],
        }


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
    return FileListing(asked, backup, tuple(files[p] for p in sorted(files)), from_index, cost)
