"""1. Backup overhead: `cya backup` vs plain `duplicity incremental`, same data, same day.

Interleaved A B / B A on each day; days are classed by whether cya starts a new
level (new week, month, year) or adds to the current leaf.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import CYA, Source, cya_setup, duplicity_backup, fresh, median, timed
from cya.core.timescale import leaf_for


def run(work: Path, quick: bool, seed: int) -> dict:
    work = fresh(work / "overhead")
    source = Source(work / "source", seed, 1000 if quick else 2000)
    env = cya_setup(work, source.root)
    start = date(2013, 1, 2)
    if quick:  # 6 plain days and 5 that start a week or a month (2013-02-03)
        days = [start + timedelta(days=i) for i in (0, 1, 2, 3, 4, 5, 6, 7, 11, 18, 25, 32)]
    else:
        days = [start + timedelta(days=i) for i in range(36)]
    plain: list[tuple[float, float]] = []
    new_level: list[tuple[float, float]] = []
    for number, day in enumerate(days):
        if number:
            source.churn()

        def cya_run(day=day) -> float:
            return timed([CYA, "--now", f"{day}T12:00:00Z", "backup"], env=env)

        def dup_run(day=day) -> float:
            return duplicity_backup(work / "plain", source.root, day, work, "plain")

        if number % 2:
            b, a = dup_run(), cya_run()
        else:
            a, b = cya_run(), dup_run()
        if number == 0:
            continue  # both make a full; not what the daily overhead is about
        kind = new_level if leaf_for(day) != leaf_for(days[number - 1]) else plain
        kind.append((a, b))
    result = {"data": source.describe(), "days": len(days) - 1}
    for name, pairs in (("plain_days", plain), ("new_level_days", new_level)):
        ratios = [a / b for a, b in pairs]
        result[name] = {
            "pairs": len(pairs),
            "cya_median_s": round(median([a for a, _ in pairs]), 3),
            "duplicity_median_s": round(median([b for _, b in pairs]), 3),
            "ratio_median": round(median(ratios), 3),
        }
    return result
