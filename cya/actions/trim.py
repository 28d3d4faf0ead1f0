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
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cya.browse import unused_indexes
from cya.config import Settings
from cya.core.retention import TrimPlan, eligible, plan_trim, unsafe_levels
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import TreeView
from cya.fsutil import crash_point
from cya.opentree import OpenTree, open_tree

if TYPE_CHECKING:
    from cya.actions.archive import Guard
from cya.tree import BackupJournal, bytes_freed, empty_trash, level_of, move_to_trash


@dataclass(frozen=True)
class TrimResult:
    plan: TrimPlan
    bytes_freed: int
    dry_run: bool
    warnings: list[str] = field(default_factory=list)  # why something due was kept
    upcoming: TrimPlan | None = None  # (dry run) what the trim after the next backup does

    def as_json(self) -> dict:
        return {
            "version": 1,
            "dry_run": self.dry_run,
            "bytes_freed": self.bytes_freed,
            "delete": [{"level": str(d.level), "reason": d.reason} for d in self.plan.delete],
            "keep": [{"level": str(d.level), "reason": d.reason} for d in self.plan.keep],
            "warnings": self.warnings,
            "after_next_backup": ([{"level": str(d.level), "reason": d.reason}
                                   for d in self.upcoming.delete]
                                  if self.upcoming is not None else None),
        }


def run(settings: Settings, now: datetime, dry_run: bool = False) -> TrimResult:
    """Trim the tree (after finishing any interrupted backup)."""
    with open_tree(settings, write=not dry_run, despite_full_disk=True) as opened:
        return trim_opened(opened, now, dry_run)


def plan(view: TreeView, settings: Settings, now: datetime,
         safe: Collection[str] | None = None, pending: Collection[Level] = ()) -> TrimPlan:
    """The trim plan for this tree now: what is protected, and what the keep counts say.

    ``safe``: with archiving on, the files the bucket was seen to hold this run (None:
    not checked, so every level the cadence says is due counts as not archived);
    ``pending``: the leaf and base of a backup still to be finished (kept with their
    ancestors)."""
    current = [leaf for leaf in (view.newest_leaf(), leaf_for(now.date(), settings.week_start))
               if leaf is not None and leaf in view.files]
    current += [level for level in pending if level in view.files]
    unarchived = (unsafe_levels(view, eligible(view, settings.archive.cadence), safe or ())
                  if settings.archive.enabled else [])
    return plan_trim(view.levels(), view.chained(), settings.trim.keep_for, current, unarchived)


def after_next_backup(view: TreeView, settings: Settings, now: datetime,
                      safe: Collection[str] | None = None) -> TrimPlan:
    """What the trim after a backup at ``now`` will do: the plan for the tree with that
    backup's levels in it (what ``trim --dry-run`` and ``backup --dry-run`` show)."""
    leaf = leaf_for(now.date(), settings.week_start)
    levels = set(view.levels()) | set(leaf.lineage())
    complete = set(view.chained()) | set(leaf.lineage())
    unarchived = (unsafe_levels(view, eligible(view, settings.archive.cadence), safe or ())
                  if settings.archive.enabled else [])
    return plan_trim(levels, complete, settings.trim.keep_for, [leaf], unarchived)


def trim_opened(opened: OpenTree, now: datetime, dry_run: bool,
                guard: Guard | None = None) -> TrimResult:
    """Plan and (unless ``dry_run``) apply a trim on an opened tree.

    With archiving on, a level holding files that are due off-site is let go of only
    when the bucket was seen to hold them this run (``guard``, from the archive step of
    ``cya backup``; ``cya trim`` lists the bucket itself) and a HEAD confirmed the bags
    of the files that would leave the tree."""
    tree = opened.tree
    view = opened.view
    journal = BackupJournal.load(tree)
    pending = [level for level in (level_of(journal.leaf), level_of(journal.base))
               if level is not None] if journal is not None else []
    archiving = opened.settings.archive.enabled
    if archiving and guard is None:
        from cya.actions.archive import Guard

        guard = Guard(opened, opened.catalog.blobs()) if dry_run else Guard.listing(opened)
    safe = guard.safe if guard is not None else None
    the_plan = plan(view, opened.settings, now, safe, pending)
    if guard is not None and guard.unreachable is not None:
        everything = {name for names in view.files.values() for name in names}
        held = len(plan(view, opened.settings, now, everything, pending).delete) - \
            len(the_plan.delete)
        if held > 0:  # only worth a warning (and exit 1) when it kept something back
            guard.problems.append(f"the bucket could not be checked ({guard.unreachable}), "
                                  f"so {held} level(s) holding files it should hold were kept")
    if archiving and not dry_run and not the_plan.empty:
        leaving = _last_copies(view, [d.level for d in the_plan.delete])
        unconfirmed = (leaving & set(safe or ())) - guard.confirm(leaving & set(safe or ()))
        if unconfirmed:
            the_plan = plan(view, opened.settings, now, guard.safe, pending)
    doomed = [d.level for d in the_plan.delete]
    freed = bytes_freed(tree, doomed)
    if not dry_run and doomed:
        for level in doomed:
            move_to_trash(tree, level)
        crash_point("after-trash-rename")
        empty_trash(tree)
        opened.changed(view.without_levels(doomed))
    if not dry_run:  # the file index of what left the tree goes too
        opened.catalog.forget_indexes(unused_indexes(opened.view, opened.catalog, archiving))
    upcoming = after_next_backup(view, opened.settings, now, safe) if dry_run else None
    return TrimResult(the_plan, freed, dry_run, guard.problems if guard is not None else [],
                      upcoming)


def _last_copies(view: TreeView, doomed: list[Level]) -> set[str]:
    """Names that would be gone from the tree once ``doomed`` (and what is inside) is."""
    def inside(level: Level) -> bool:
        return any(level == gone or gone.is_ancestor_of(level) for gone in doomed)

    leaving = {n for level, names in view.files.items() if inside(level) for n in names}
    staying = {n for level, names in view.files.items() if not inside(level) for n in names}
    return leaving - staying
