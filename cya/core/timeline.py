"""The calendar of restorable points (``cya timeline``): for every day, how near to it
a restore can get.

Each day is shaded by the gap between it and the newest restorable backup made on
or before it: the day itself, within a week, within a month, or older; a day the
archive gets nearer to than the tree is marked as the archive's. (Shading by the
finest level holding a day's backup says little here: every week chain is seeded
with its month's chain, so a kept week level holds nearly every restorable point.)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from cya.core.chains import restorable
from cya.core.treeview import TreeView

SHADES = {"day": "█", "week": "▓", "month": "▒", "older": "░", "archive": "a"}
NONE = "·"


@dataclass(frozen=True)
class Month:
    first: date
    days: tuple[str | None, ...]  # per day: "day", "week", "month", "older", "archive", None

    def line(self) -> str:
        return "".join(SHADES[shade] if shade else NONE for shade in self.days)


def _gap_class(gap: int | None) -> str | None:
    if gap is None:
        return None
    return "day" if gap == 0 else "week" if gap <= 7 else "month" if gap <= 31 else "older"


def shade_days(local: Iterable[datetime], archived: Iterable[datetime], tz: tzinfo
               ) -> dict[date, str | None]:
    """Every day from the first backup to the last -> its shade (None: nothing restores
    it)."""
    local_days = sorted({t.astimezone(tz).date() for t in local})
    archived_days = sorted({t.astimezone(tz).date() for t in archived})
    every = local_days + archived_days
    if not every:
        return {}

    def gap(days: list[date], day: date) -> int | None:
        at = bisect.bisect_right(days, day)
        return (day - days[at - 1]).days if at else None

    shades: dict[date, str | None] = {}
    day, last = min(every), max(every)
    while day <= last:
        near, far = gap(local_days, day), gap(archived_days, day)
        if far is not None and (near is None or far < near):
            shades[day] = "archive"
        else:
            shades[day] = _gap_class(near)
        day += timedelta(days=1)
    return shades


def calendar(view: TreeView, tz: tzinfo, archived: TreeView | None = None) -> list[Month]:
    """The tree's (and the archive's) restorable points as a calendar, a row per month."""
    shades = shade_days((r.time for r in restorable(view)),
                        (r.time for r in restorable(archived)) if archived else (), tz)
    if not shades:
        return []
    rows = []
    month = min(shades).replace(day=1)
    while month <= max(shades):
        following = (month + timedelta(days=32)).replace(day=1)
        rows.append(Month(month, tuple(shades.get(month + timedelta(days=n))
                                       for n in range((following - month).days))))
        month = following
    return rows
