"""Time -> leaf: which level directories a backup taken on a given day belongs to.

A leaf is five names, century / decade / year / year-month / week-start-date,
all derived from the *start date of the week* the day falls in (DESIGN.md 1):
Tue 2013-01-01 with Sunday weeks starts week 2012-12-30 and so belongs to
``2000/2010/2012/2012-12/2012-12-30``. Names sort in time order as strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum

KINDS = ("century", "decade", "year", "month", "week")


class WeekStart(Enum):
    SUNDAY = "sunday"
    MONDAY = "monday"

    @property
    def weekday(self) -> int:
        """The first day of the week as ``date.weekday()`` numbers it."""
        return 6 if self is WeekStart.SUNDAY else 0


@dataclass(frozen=True, order=True)
class Level:
    """One level directory, named by its path below the tree root."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.names) <= len(KINDS):
            raise ValueError(f"a level has 1 to {len(KINDS)} names, not {self.names!r}")

    @property
    def kind(self) -> str:
        return KINDS[len(self.names) - 1]

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def relpath(self) -> str:
        return "/".join(self.names)

    @property
    def is_leaf(self) -> bool:
        return len(self.names) == len(KINDS)

    @property
    def parent(self) -> Level | None:
        return Level(self.names[:-1]) if len(self.names) > 1 else None

    def lineage(self) -> tuple[Level, ...]:
        """This level and its ancestors, top (century) first."""
        return tuple(Level(self.names[:depth]) for depth in range(1, len(self.names) + 1))

    def is_ancestor_of(self, other: Level) -> bool:
        return len(self.names) < len(other.names) and other.names[: len(self.names)] == self.names

    def __str__(self) -> str:
        return self.relpath


def week_start_of(day: date, week_start: WeekStart = WeekStart.SUNDAY) -> date:
    """Return the first day of the week that ``day`` falls in."""
    return day - timedelta(days=(day.weekday() - week_start.weekday) % 7)


def leaf_for(day: date, week_start: WeekStart = WeekStart.SUNDAY) -> Level:
    """Return the leaf level for a backup taken on the local calendar date ``day``."""
    start = week_start_of(day, week_start)
    year = start.year
    return Level(
        (
            f"{year // 100 * 100:04d}",
            f"{year // 10 * 10:04d}",
            f"{year:04d}",
            f"{year:04d}-{start.month:02d}",
            start.isoformat(),
        )
    )


_NAME_PATTERNS = (
    re.compile(r"\d{2}00"),
    re.compile(r"\d{3}0"),
    re.compile(r"\d{4}"),
    re.compile(r"\d{4}-\d{2}"),
    re.compile(r"\d{4}-\d{2}-\d{2}"),
)


def parse_level(names: tuple[str, ...], week_start: WeekStart | None = None) -> Level | None:
    """Return the Level these directory names spell, or None if they are not one.

    A level's names must nest: the decade inside its century, the year inside its
    decade, and so on. With ``week_start``, a week name must be such a week's start.
    """
    if not 1 <= len(names) <= len(KINDS):
        return None
    for name, pattern in zip(names, _NAME_PATTERNS, strict=False):
        if not pattern.fullmatch(name):
            return None
    year = None
    if len(names) >= 3:
        year = int(names[2])
        if names[1] != f"{year // 10 * 10:04d}":
            return None
    if len(names) >= 2 and int(names[1]) // 100 * 100 != int(names[0]):
        return None
    if len(names) >= 4:
        month_year, month = names[3].split("-")
        if month_year != names[2] or not 1 <= int(month) <= 12:
            return None
    if len(names) == 5:
        try:
            start = date.fromisoformat(names[4])
        except ValueError:
            return None
        if names[4][:7] != names[3]:
            return None
        if week_start is not None and week_start_of(start, week_start) != start:
            return None
    return Level(tuple(names))
