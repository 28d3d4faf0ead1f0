"""The first backup of a month and of a week, repeated: cya against plain duplicity
storing the same changes, many pairs instead of ``scale``'s one.

    python -m benchmarks.newlevel [--files N] [--size-scale S] [--rounds N]

One generated source (benchmarks/scalesource.py) gets two months of Sunday backups,
by ``cya backup`` and, as in ``python -m benchmarks scale``, by plain duplicity into a
*monthly* chain (a full, then each month's first backup) and a *weekly* one (the
monthly chain at each month's first backup, then each week's first backup). Then,
for the first backup of a month (a Sunday that starts one) and the first of a week
(the Sunday after it), the state before the backup is kept, and every round puts
it back (cya's tree, catalog and cache; the plain chains and their cache) and runs
the backup again: ``cya backup``, and ``duplicity incremental`` into the chain that
stores the same changes. The order of the two moves every round; the disk is
synced before each run.

CPU time (user + sys of the whole process tree, gpg included), medians and the
median of the per-round ratios; duplicity's own share of the cya run is timed apart
(``CYA_DUPLICITY`` set to a wrapper under GNU time), the rest is cya's own process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

from benchmarks import measure
from benchmarks.common import CYA, fresh, median
from benchmarks.scale import DUPLICITY, MONTHLY, WEEKLY, Bench, Plan, kind_of_day, noon

FIRST = date(2013, 5, 1)  # a Wednesday: the first backup, a full
HISTORY_END = date(2013, 6, 30)
DAYS = {"first_of_month": date(2013, 7, 7), "first_of_week": date(2013, 7, 14)}


class Repeat:
    """Put a bench's state back as it was when ``keep`` was called."""

    def __init__(self, bench: Bench, chain: str):
        self.work = bench.work
        self.kept = self.work / "kept"
        self.parts = ["cya", f"plain-{chain}", "plain-cache"]

    def keep(self) -> None:
        shutil.rmtree(self.kept, ignore_errors=True)
        self.kept.mkdir()
        for part in self.parts:
            subprocess.run(["cp", "-a", str(self.work / part), str(self.kept / part)],
                           check=True)

    def restore(self) -> None:
        for part in self.parts:
            shutil.rmtree(self.work / part)
            subprocess.run(["cp", "-a", str(self.kept / part), str(self.work / part)],
                           check=True)
        # cya names a tree's duplicity cache after where the tree is on disk (a copy gets
        # its own): give the copy the cache the tree had
        from cya.tree import Tree

        caches = self.work / "cya" / "cache" / "cya"
        [cache] = [entry for entry in caches.iterdir() if entry.name != "runs"]
        tree_id = cache.name.rsplit("-", 1)[0]
        cache.rename(caches / Tree(self.work / "cya" / "tree").identity(tree_id))
        os.sync()


def rounds(bench: Bench, day: date, chain: str, count: int) -> dict:
    repeat = Repeat(bench, chain)
    repeat.keep()
    times = bench.work / "duplicity-times"
    wrapper = bench.work / "duplicity-wrapper"
    wrapper.write_text(f"#!/bin/sh\nexec /usr/bin/time -a -o {times} -f '%U %S' "
                       f"{DUPLICITY} \"$@\"\n")
    wrapper.chmod(0o755)
    env = {**bench.env, "CYA_DUPLICITY": str(wrapper)}
    rows = []
    for number in range(count):
        row: dict[str, float] = {}
        for who in (["cya", "plain"] if number % 2 == 0 else ["plain", "cya"]):
            repeat.restore()
            times.unlink(missing_ok=True)
            if who == "plain":
                row["plain"] = bench.plain_backup(day, chain=chain).cpu
            else:
                mine = measure.run([CYA, "--now", noon(day), "backup"], env, cya=True)
                duplicity = sum(float(user) + float(system) for user, system in (
                    line.split() for line in times.read_text().splitlines()
                    if line[:1].isdigit()))
                row.update(cya=mine.cpu, duplicity_under_cya=duplicity,
                           cya_own=mine.cpu - duplicity)
        print(f"{day} round {number + 1}: cya {row['cya']:.2f} s (duplicity "
              f"{row['duplicity_under_cya']:.2f} s), plain {row['plain']:.2f} s CPU", flush=True)
        rows.append(row)
    repeat.restore()
    shutil.rmtree(repeat.kept)
    keys = ["cya", "duplicity_under_cya", "cya_own", "plain"]
    return {
        "day": str(day), "rounds": count,
        "cpu_s": {key: [round(row[key], 2) for row in rows] for key in keys},
        "median_cpu_s": {key: round(median([row[key] for row in rows]), 2) for key in keys},
        "ratio_median": round(median([row["cya"] / row["plain"] for row in rows]), 3),
        "duplicity_ratio_median": round(median(
            [row["duplicity_under_cya"] / row["plain"] for row in rows]), 3),
        "cya_own_share_median": round(median([row["cya_own"] / row["plain"] for row in rows]),
                                      3),
    }


def run(work: Path, files: int, size_scale: float, count: int, seed: int) -> dict:
    work = fresh(work / "newlevel")
    plan = Plan(files, size_scale, FIRST, HISTORY_END, DAYS["first_of_month"],
                DAYS["first_of_week"], ())
    bench = Bench(work, plan, seed)
    bench.first()
    history = bench.history()
    result: dict = {"data": bench.source.describe(), "history": f"{history['backups']} "
                    f"Sunday backups from {FIRST} to {HISTORY_END}"}
    day = HISTORY_END
    for kind, target in DAYS.items():
        while day < target:
            day += timedelta(days=1)
            bench.source.churn(day)
        assert kind_of_day(target, target - timedelta(days=1)) == kind
        chain = MONTHLY if kind == "first_of_month" else WEEKLY
        result[kind] = rounds(bench, target, chain, count)
        bench.cya_backup(target)  # the day done once more, for the next one to follow
        bench.same_changes(target, kind)
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    from benchmarks.__main__ import run_sized

    run_sized("newlevel", run, size_scale=0.1, rounds=6, seed=2012,
              size_help="multiply every file size (0.1: about 0.08 GB at 25,000 files)")


if __name__ == "__main__":
    main()
