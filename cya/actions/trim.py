"""``cya trim``: keep the N newest child levels in every level.

Steps, and the crash point tests kill a real process at:

1. take the lock (``cya trim``; ``cya backup`` trims under its own lock);
2. recover: finish removing what an interrupted trim left in ``.cya/trash``
   (and finish or undo an interrupted backup);
3. plan (pure: core.retention) and count the bytes it frees;
4. rename every doomed level into ``.cya/trash`` -> crash point after-trash-rename;
5. remove the trash.

A level leaves the tree in one rename, so a crash never leaves half a level in
place, and step 2 of the next run (trim or backup) finishes the removal.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from cya.catalog import Catalog
from cya.config import Settings
from cya.core.retention import TrimPlan, awaiting_archive, plan_trim
from cya.core.timescale import leaf_for
from cya.core.treeview import TreeView
from cya.fsutil import crash_point
from cya.lock import TreeLock
from cya.recovery import recover
from cya.tree import Tree, bytes_freed, empty_trash, move_to_trash


@dataclass(frozen=True)
class TrimResult:
    plan: TrimPlan
    bytes_freed: int
    dry_run: bool

    def as_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "bytes_freed": self.bytes_freed,
            "delete": [{"level": str(d.level), "reason": d.reason} for d in self.plan.delete],
            "keep": [{"level": str(d.level), "reason": d.reason} for d in self.plan.keep],
        }


def run(settings: Settings, now: datetime, dry_run: bool = False) -> TrimResult:
    """Trim the tree under its lock (after finishing any interrupted backup)."""
    tree = Tree(settings.tree)
    tree.require()
    with TreeLock(tree.lock_path), Catalog(tree.catalog_path) as catalog:
        if not dry_run:
            recover(tree, catalog, settings)
        return trim_locked(tree, settings, now, dry_run)


def plan(view: TreeView, settings: Settings, now: datetime,
         archived: Collection[str] = ()) -> TrimPlan:
    """The trim plan for this tree now: what is protected, and what the keep counts say.
    ``archived``: the year levels (paths) the archive holds already."""
    current = [leaf for leaf in (view.newest_leaf(), leaf_for(now.date(), settings.week_start))
               if leaf is not None and leaf in view.files]
    awaiting = awaiting_archive(view, archived) if settings.archive.enabled else []
    return plan_trim(view.levels(), view.chained(), settings.trim.keep_for, current, awaiting)


def trim_locked(tree: Tree, settings: Settings, now: datetime, dry_run: bool) -> TrimResult:
    """Plan and (unless ``dry_run``) apply a trim; the caller holds the tree lock."""
    view = tree.scan()
    with Catalog(tree.catalog_path) as catalog:
        archived = catalog.archived_year_paths()
    the_plan = plan(view, settings, now, archived)
    doomed = [d.level for d in the_plan.delete]
    freed = bytes_freed(tree, doomed)
    if not dry_run and doomed:
        for level in doomed:
            move_to_trash(tree, level)
        crash_point("after-trash-rename")
        empty_trash(tree)
    return TrimResult(the_plan, freed, dry_run)
