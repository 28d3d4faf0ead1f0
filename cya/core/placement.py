"""Where one backup goes: the placement plan (DESIGN.md 1, "Placing one backup").

Given the levels that already hold a chain, the leaf for *now* and the newest
backup time in the tree, the plan says which level is the *base* (the nearest
level on the leaf's lineage holding a chain), which levels are new (from just
below the base down to the leaf), whether duplicity runs a full or an
incremental, and which levels receive the new backup's files (every new level
and the base). Seeding new levels with the base's files and linking the new
files into the base is what makes the first backup of a new week join the
month chain, the first of a new month join the year chain, and so on.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from cya.core.timescale import Level


class BackupTimeNotAfterNewest(ValueError):
    """The requested backup time is not after the newest backup in the tree."""

    def __init__(self, requested: datetime, newest: datetime):
        super().__init__(f"{requested.isoformat()} is not after {newest.isoformat()}")
        self.requested = requested
        self.newest = newest


@dataclass(frozen=True)
class Placement:
    time: datetime
    leaf: Level
    base: Level | None  # None: the tree holds no backup yet
    new_levels: tuple[Level, ...]  # top-down; empty when the leaf is the base
    broken: str | None = None  # why the base's chain cannot be extended: start a new full

    @property
    def full(self) -> bool:
        """True when duplicity must make a full backup (nothing to diff against, or a base
        chain that is broken)."""
        return self.base is None or self.broken is not None

    @property
    def link_into(self) -> tuple[Level, ...]:
        """Every level whose chain gains this backup, top-down."""
        return ((self.base,) if self.base is not None else ()) + self.new_levels

    @property
    def top_new_level(self) -> Level | None:
        """The highest new level: publishing it publishes every new level below it."""
        return self.new_levels[0] if self.new_levels else None

    def reason(self) -> str:
        if self.base is None:
            return "first backup in the tree: a full backup, every level is new"
        if self.broken is not None:
            return (f"a new full backup, because the {self.base.kind} chain {self.base} is "
                    f"broken ({self.broken})")
        if not self.new_levels:
            return f"incremental in the {self.leaf.kind} chain {self.leaf}"
        kinds = ", ".join(level.kind for level in self.new_levels)
        return f"new {kinds}: incremental against the {self.base.kind} chain {self.base}"


def plan_placement(
    time: datetime,
    leaf: Level,
    chained: Collection[Level],
    newest: datetime | None,
) -> Placement:
    """Return where a backup at ``time`` with leaf ``leaf`` goes.

    ``chained`` holds the levels that have at least one complete backup;
    ``newest`` is the newest backup time anywhere in the tree. Raise
    ``BackupTimeNotAfterNewest`` if ``time`` is not after ``newest``.
    """
    if newest is not None and time <= newest:
        raise BackupTimeNotAfterNewest(time, newest)
    lineage = leaf.lineage()
    base = next((level for level in reversed(lineage) if level in chained), None)
    start = lineage.index(base) + 1 if base is not None else 0
    return Placement(time=time, leaf=leaf, base=base, new_levels=lineage[start:])
