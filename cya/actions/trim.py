"""``cya trim``: keep the N newest child levels in every level.

Steps, and the crash point tests kill a real process at:

1. open the tree for writing (``cya trim``; ``cya backup`` trims the tree it opened):
   finish removing what an interrupted trim left in ``.cya/trash`` and finish or undo
   an interrupted backup — on a full disk, where finishing one may be impossible,
   trim goes on without it and keeps every level that backup needs;
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

from cya.config import Settings
from cya.core.retention import TrimPlan, awaiting_archive, plan_trim
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import TreeView
from cya.fsutil import crash_point
from cya.opentree import OpenTree, open_tree
from cya.tree import BackupJournal, bytes_freed, empty_trash, level_of, move_to_trash


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
    """Trim the tree (after finishing any interrupted backup)."""
    with open_tree(settings, write=not dry_run, despite_full_disk=True) as opened:
        return trim_opened(opened, now, dry_run)


def plan(view: TreeView, settings: Settings, now: datetime,
         archived: Collection[str] = (), pending: Collection[Level] = ()) -> TrimPlan:
    """The trim plan for this tree now: what is protected, and what the keep counts say.
    ``archived``: the year levels (paths) the archive holds already; ``pending``: the
    leaf and base of a backup still to be finished (kept with their ancestors)."""
    current = [leaf for leaf in (view.newest_leaf(), leaf_for(now.date(), settings.week_start))
               if leaf is not None and leaf in view.files]
    current += [level for level in pending if level in view.files]
    awaiting = awaiting_archive(view, archived) if settings.archive.enabled else []
    return plan_trim(view.levels(), view.chained(), settings.trim.keep_for, current, awaiting)


def trim_opened(opened: OpenTree, now: datetime, dry_run: bool) -> TrimResult:
    """Plan and (unless ``dry_run``) apply a trim on an opened tree."""
    tree = opened.tree
    view = opened.view
    journal = BackupJournal.load(tree)
    pending = [level for level in (level_of(journal.leaf), level_of(journal.base))
               if level is not None] if journal is not None else []
    the_plan = plan(view, opened.settings, now, opened.catalog.archived_year_paths(), pending)
    doomed = [d.level for d in the_plan.delete]
    freed = bytes_freed(tree, doomed)
    if not dry_run and doomed:
        for level in doomed:
            move_to_trash(tree, level)
        crash_point("after-trash-rename")
        empty_trash(tree)
        opened.rescan()
    return TrimResult(the_plan, freed, dry_run)
