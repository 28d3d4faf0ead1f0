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
* Protected levels are never deleted, nor their ancestors: the current leaf, and
  (with archiving on) every level holding a file the bucket was not seen to hold.
* Deleting a level deletes everything below it; the plan names only the topmost.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
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
    unarchived: Collection[Level] = (),
) -> TrimPlan:
    """Return which levels to delete and which to keep, each with its reason.

    ``levels`` are all level directories in the tree, ``complete`` those holding a
    complete backup, ``keep_for(kind)`` the N for children of that kind. Every level
    on the lineage of a leaf in ``current`` is kept, and so is every level in
    ``unarchived`` (holding files the bucket does not hold) with its ancestors.
    """
    existing = set(levels)
    complete = set(complete)
    lineage = {level for leaf in current for level in leaf.lineage()}
    guarded = {level for held in unarchived for level in held.lineage()}
    children: dict[Level | None, list[Level]] = {}
    for level in existing:
        children.setdefault(level.parent, []).append(level)
    delete: list[Decision] = []
    keep: list[Decision] = []

    def visit(parent: Level | None) -> None:
        counted = 0
        for child in sorted(children.get(parent, ()), reverse=True):  # newest first
            n = keep_for(child.kind)
            if child in guarded and child not in lineage:
                keep.append(Decision(child, "holds files the bucket does not hold yet"
                                     if child in unarchived else
                                     "holds levels whose files the bucket does not hold yet"))
                counted += child in complete
            elif child in lineage:
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


def finished_years(view: TreeView) -> list[Level]:
    """Year levels before the newest backup's year (DESIGN.md 4: a year is finished
    once the tree holds a backup in a later year)."""
    leaf = view.newest_leaf()
    if leaf is None:
        return []
    return [level for level in view.levels() if level.kind == "year" and level.name < leaf.names[2]]


CADENCES = ("backup", "week", "month", "year")


def ended(leaf: Level | None, level: Level) -> bool:
    """Whether a level's period has ended: the tree holds a backup after it (the newest
    backup's leaf, ``leaf``, lies outside it)."""
    return leaf is not None and level not in leaf.lineage() and level < leaf


def eligible(view: TreeView, cadence: str) -> list[Level]:
    """The levels whose files go off-site now under ``cadence``: with "backup" every level;
    with "week", "month" or "year" every level inside an ended level of that kind (a
    level directory holds its finer levels)."""
    if cadence == "backup":
        return view.levels()
    depth = ("century", "decade", "year", "month", "week").index(cadence) + 1
    leaf = view.newest_leaf()
    return [level for level in view.levels() if len(level.names) >= depth
            and ended(leaf, Level(level.names[:depth]))]


def unsafe_levels(view: TreeView, levels: Collection[Level], safe: Collection[str]
                  ) -> list[Level]:
    """Levels among ``levels`` holding a file whose name is not in ``safe`` (names the
    bucket was seen to hold this run): the trim must keep them, and their ancestors."""
    safe = set(safe)
    return [level for level in levels if not view.files.get(level, frozenset()) <= safe]


def awaiting_archive(view: TreeView, archived: Collection[str]) -> list[Level]:
    """Finished years whose year record the archive does not hold yet (``archived``: year
    level paths)."""
    return [year for year in finished_years(view) if year.relpath not in archived]


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    age_days: float  # since S3 confirmed the upload
    deep: bool = True  # in Deep Archive (a minimum storage duration), else Standard


@dataclass(frozen=True)
class Point:
    """A restorable point the bucket keeps: an archived backup, or a finished year."""

    name: str  # "backup TIME" or "year PATH"
    keep: bool  # the retention keeps it
    needs: frozenset[str]  # keys of the bags its files are in
    records: tuple[str, ...] = ()  # its own small records (go with the point)
    why: str = ""


@dataclass(frozen=True)
class PrunePlan:
    drop: tuple[Point, ...]  # points no longer kept: their records go at once
    delete: tuple[RemoteObject, ...]  # needed by no kept point and old enough
    defer: tuple[tuple[RemoteObject, float], ...]  # needed by none, too young: days to wait
    keep: tuple[Point, ...]

    @property
    def empty(self) -> bool:
        return not (self.drop or self.delete or self.defer)


def plan_prune(points: Collection[Point], objects: Collection[RemoteObject],
               min_age_days: int) -> PrunePlan:
    """Which points to drop and which objects may go: an object goes only when no kept
    point needs it **and** (in Deep Archive) it is at least ``min_age_days`` old; one that
    is not yet waits (deferred), since Deep Archive bills its minimum days anyway.

    ``objects``: every bag that might go (needed or not). Records of dropped points go
    with them; a kept point's records and bags are never touched.
    """
    kept = [p for p in points if p.keep]
    dropped = [p for p in points if not p.keep]
    needed = set().union(*(p.needs for p in kept)) if kept else set()
    protected = needed | {r for p in kept for r in p.records}
    delete, defer = [], []
    for item in sorted(objects, key=lambda o: o.key):
        if item.key in protected:
            continue
        if not item.deep or item.age_days >= min_age_days:
            delete.append(item)
        else:
            defer.append((item, min_age_days - item.age_days))
    return PrunePlan(tuple(sorted(dropped, key=lambda p: p.name)), tuple(delete),
                     tuple(defer), tuple(sorted(kept, key=lambda p: p.name)))


def keep_points(points: Mapping[str, Level], held: Collection[str], levels: Collection[Level],
                complete: Collection[Level], current: Collection[Level],
                keep_for: Callable[[str], int], years: Collection[str], keep_years: int
                ) -> dict[str, tuple[bool, str]]:
    """Which archived points the remote retention keeps, and why. Keys are "backup TIME"
    and "year PATH".

    A backup point (``points``: time -> the level its record is in) is kept while the
    tree holds that backup (``held``), or while the tree's own trim rules, applied to
    the tree's levels together with the archived ones, would keep its level: the bucket
    mirrors the tree's retention, not just its directory — so after ``cya recover`` and a
    new full, the history the rules still keep stays off-site. A finished year is kept
    within the newest ``keep_years`` (0: all).
    """
    lineage = {level for level in points.values() for level in level.lineage()}
    plan = plan_trim(set(levels) | lineage, set(complete) | lineage, keep_for, current)
    gone = [d.level for d in plan.delete]

    def survives(level: Level) -> bool:
        return not any(level == g or g.is_ancestor_of(level) for g in gone)

    # the first backup of a period joined the chain of the period above it when it was
    # placed: it lives on there after its own level is trimmed
    first: dict[Level, str] = {}
    for time, level in points.items():
        for within in level.lineage():
            if within not in first or time < first[within]:
                first[within] = time
    decisions = {}
    for time, level in points.items():
        holder = level
        while not survives(holder) and holder.parent is not None and first[holder] == time:
            holder = holder.parent
        if time in held:
            decisions[f"backup {time}"] = (True, "the tree holds it")
        elif not survives(holder):
            decisions[f"backup {time}"] = (False, "the trim rules no longer keep its level "
                                                  f"{level}")
        else:
            decisions[f"backup {time}"] = (True, f"the trim rules keep its level {holder}")
    ordered = sorted(years)
    kept = ordered if keep_years == 0 else ordered[-keep_years:]
    for year in ordered:
        decisions[f"year {year}"] = ((True, "a finished year within keep_years")
                                     if year in kept else (False, "beyond keep_years"))
    return decisions
