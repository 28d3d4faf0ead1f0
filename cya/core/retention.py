"""Trim plans: keep the N newest child levels in every level (DESIGN.md 1, "Trimming").

Like restic's ApplyPolicy, a pure function takes what is there and returns what
to delete and what to keep, each with its reason; ``cya trim --dry-run`` prints
the plan, ``apply`` performs it, tests assert on it.

Rules:

* In every level, the N newest child levels are kept (N per child kind:
  ``keep_week``, ``keep_month``, ``keep_year``, ``keep_decade``, else ``keep``);
  older ones are deleted. Centuries are never trimmed.
* Only a level that holds a complete backup counts toward N, and one that holds
  none is never deleted by this rule: a run of failed or half-built levels never
  pushes a good level out (rsnapshot's destructive-rotation bugs are the lesson).
* Protected levels are never deleted, and nothing inside them either: the current
  leaf and its ancestors, and (with archiving on) finished years not yet archived.
* Deleting a level deletes everything below it; the plan names only the topmost.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from cya.core.timescale import Level
from cya.core.treeview import TreeView


@dataclass(frozen=True)
class Decision:
    level: Level
    reason: str


@dataclass(frozen=True)
class TrimPlan:
    delete: tuple[Decision, ...]
    keep: tuple[Decision, ...]

    @property
    def empty(self) -> bool:
        return not self.delete


def plan_trim(
    levels: Collection[Level],
    complete: Collection[Level],
    keep_for: Callable[[str], int],
    current: Collection[Level] = (),
    awaiting_archive: Collection[Level] = (),
) -> TrimPlan:
    """Return which levels to delete and which to keep, each with its reason.

    ``levels`` are all level directories in the tree, ``complete`` those holding a
    complete backup, ``keep_for(kind)`` the N for children of that kind. Every level
    on the lineage of a leaf in ``current`` is kept; every level in
    ``awaiting_archive`` is kept with everything under it.
    """
    existing = set(levels)
    complete = set(complete)
    lineage = {level for leaf in current for level in leaf.lineage()}
    whole = set(awaiting_archive)
    children: dict[Level | None, list[Level]] = {}
    for level in existing:
        children.setdefault(level.parent, []).append(level)
    delete: list[Decision] = []
    keep: list[Decision] = []

    def keep_whole(parent: Level, why: str) -> None:
        for child in sorted(children.get(parent, ())):
            keep.append(Decision(child, why))
            keep_whole(child, why)

    def visit(parent: Level | None) -> None:
        counted = 0
        for child in sorted(children.get(parent, ()), reverse=True):  # newest first
            n = keep_for(child.kind)
            if child in whole:
                keep.append(Decision(child, "a finished year not yet archived"))
                keep_whole(child, f"inside {child}, a finished year not yet archived")
                counted += child in complete
                continue
            if child in lineage:
                keep.append(Decision(child, "the current leaf or its ancestor"))
                counted += child in complete
            elif parent is None:
                keep.append(Decision(child, "centuries are not trimmed"))
            elif child not in complete:
                keep.append(Decision(child, "holds no complete backup, so it does not count"))
            elif counted < n:
                counted += 1
                keep.append(Decision(child, f"one of the {n} newest {child.kind}s in {parent}"))
            else:
                delete.append(Decision(child, f"older than the {n} newest {child.kind}s "
                                              f"in {parent}"))
                continue
            visit(child)

    visit(None)
    return TrimPlan(tuple(sorted(delete, key=lambda d: d.level)),
                    tuple(sorted(keep, key=lambda d: d.level)))


def without(levels: Collection[Level], plan: TrimPlan) -> set[Level]:
    """The levels left after applying ``plan`` (a deleted level takes its subtree along)."""
    doomed = [d.level for d in plan.delete]
    return {level for level in levels
            if not any(level == gone or gone.is_ancestor_of(level) for gone in doomed)}


def finished_years(view: TreeView) -> list[Level]:
    """Year levels before the newest backup's year (DESIGN.md 4: a year is finished
    once the tree holds a backup in a later year)."""
    leaf = view.newest_leaf()
    if leaf is None:
        return []
    return [level for level in view.levels() if level.kind == "year" and level.name < leaf.names[2]]


def awaiting_archive(view: TreeView, archived: Collection[str]) -> list[Level]:
    """Finished years the archive does not hold yet (``archived``: year level paths)."""
    return [year for year in finished_years(view) if year.relpath not in archived]


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    age_days: float  # since S3 confirmed the upload
    years: frozenset[str]  # archived years that need it (a bag: any year using its blobs)


@dataclass(frozen=True)
class PrunePlan:
    drop_years: tuple[str, ...]  # archived years no longer kept
    delete: tuple[RemoteObject, ...]  # needed by no kept year and old enough
    defer: tuple[tuple[RemoteObject, float], ...]  # needed by none, too young: days to wait
    keep_years: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.drop_years or self.delete or self.defer)


def plan_prune(years: Collection[str], keep_years: int, objects: Collection[RemoteObject],
               min_age_days: int) -> PrunePlan:
    """Which archived years to drop (all but the newest ``keep_years``; 0 keeps all)
    and which objects may go: an object goes only when no kept year needs it **and** it
    is at least ``min_age_days`` old; one that is not yet waits (deferred), since Deep
    Archive bills every object for its minimum days anyway."""
    ordered = sorted(years)
    kept = ordered if keep_years == 0 else ordered[-keep_years:]
    dropped = tuple(year for year in ordered if year not in kept)
    delete, defer = [], []
    for item in sorted(objects, key=lambda o: o.key):
        if item.years & set(kept):
            continue
        if item.age_days >= min_age_days:
            delete.append(item)
        else:
            defer.append((item, min_age_days - item.age_days))
    return PrunePlan(dropped, tuple(delete), tuple(defer), tuple(kept))
