"""2. Long-run simulation with real duplicity: cya (trimming) against one endless
chain and monthly fulls (keep all, keep the last 2 chains), on identical data.

Each strategy backs up the same source every day (two strategies at a time, so
per-backup times are under the same two-way load for all). At the end: stored
bytes (each inode once), objects, the chain needed for the newest state, and
restores of the newest state and of 30, 180 and 365 days back, each verified by
SHA-256 against the recorded source.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import (
    CYA,
    DUPLICITY,
    Source,
    base_env,
    cya_setup,
    duplicity_backup,
    fresh,
    median,
    noon,
    p95,
    stored,
    timed,
    tree_digest,
)
from cya.core.names import backup_sets, format_time

STRATEGIES = ("cya", "single_chain", "monthly_full_keep_all", "monthly_full_keep_2")


def run(work: Path, quick: bool, seed: int, days: int) -> dict:
    work = fresh(work / "simulate")
    source = Source(work / "source", seed, 500 if quick else 2000)
    env = cya_setup(work, source.root)
    # end in mid-January, so that even a short run crosses a month and a year
    end = date(2013 + (days - 1) // 365, 1, 13)
    calendar = [end - timedelta(days=days - 1 - i) for i in range(days)]
    digests: dict[date, str] = {}
    times: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    targets = {name: work / name for name in STRATEGIES[1:]}
    last8 = work / "full_plus_7"

    def backup(name: str, day: date) -> float:
        if name == "cya":
            return timed([CYA, "--now", f"{day}T12:00:00Z", "backup"], env=env)
        if name == "single_chain":
            return duplicity_backup(targets[name], source.root, day, work, name)
        spent = duplicity_backup(targets[name], source.root, day, work, name,
                                 "--full-if-older-than", "1M")
        if name == "monthly_full_keep_2":
            spent += timed([DUPLICITY, "remove-all-but-n-full", "2", "--force",
                            "--archive-dir", str(work / "dupcache"), "--name", name,
                            f"file://{targets[name]}"], env=base_env(work))
        return spent

    with ThreadPoolExecutor(max_workers=2) as pool:
        for number, day in enumerate(calendar):
            if number:
                source.churn()
            digests[day] = tree_digest(source.root)
            spent_by = pool.map(backup, STRATEGIES, [day] * len(STRATEGIES))
            for name, spent in zip(STRATEGIES, spent_by, strict=True):
                times[name].append(spent)
            if number >= days - 8:  # the reference: a chain of one full and 7 increments
                duplicity_backup(last8, source.root, day, work, "last8")

    result: dict = {"data": source.describe(), "days": days, "strategies": {}}
    asks = [0] + [back for back in (30, 180, 365) if back < days]
    for name in STRATEGIES:
        place = work / "cya" / "tree" if name == "cya" else targets[name]
        size, objects = stored(place)
        entry = {
            "stored_bytes": size,
            "objects": objects,
            "backup_median_s": round(median(times[name][1:]), 3),
            "backup_p95_s": round(p95(times[name][1:]), 3),
            "restores": {},
        }
        entry["newest_chain"] = (_cya_newest_chain(env, calendar[-1]) if name == "cya"
                                 else _duplicity_chain(place))
        for back in asks:
            day = calendar[-1] - timedelta(days=back)
            entry["restores"][f"{back}_days_back"] = _restore(
                work, name, place, env, day, digests)
        result["strategies"][name] = entry
    reference = _restore(work, "last8", last8, env, calendar[-1], digests)
    result["reference_full_plus_7_restore_s"] = reference["seconds"]
    monthly = result["strategies"]["monthly_full_keep_all"]["stored_bytes"]
    result["cya_stored_vs_monthly_keep_all"] = round(
        result["strategies"]["cya"]["stored_bytes"] / monthly, 3)
    for entry in result["strategies"].values():
        for restore in entry["restores"].values():
            restore["vs_full_plus_7"] = round(restore["seconds"] / reference["seconds"], 2)
    return result


def _cya_newest_chain(env: dict, last: date) -> int:
    out = subprocess.run([CYA, "restore", "--date", f"{last}T13:00:00Z", "--target",
                          "/nonexistent-cya-benchmark", "--dry-run"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"chain of (\d+)", out).group(1))


def _duplicity_chain(target: Path) -> int:
    sets = [s for s in backup_sets(p.name for p in target.iterdir()) if s.complete]
    last_full = max(i for i, s in enumerate(sets) if s.full)
    return len(sets) - last_full


def _restore(work: Path, name: str, place: Path, env: dict, day: date,
             digests: dict[date, str]) -> dict:
    target = work / "restored" / f"{name}-{day}"
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(exist_ok=True)
    started = time.perf_counter()
    if name == "cya":
        out = subprocess.run([CYA, "restore", "--date", f"{day}T23:00:00Z", "--target",
                              str(target)], env=env, capture_output=True, text=True,
                             check=True).stdout
        seconds = time.perf_counter() - started
        got = date.fromisoformat(re.search(r"as of (\d{4}-\d{2}-\d{2})", out).group(1))
        restored = target / Path(str(work / "source")).relative_to("/")
    else:
        subprocess.run([DUPLICITY, "restore", "--time", format_time(noon(day)),
                        "--archive-dir", str(work / "restorecache"), "--name", name,
                        f"file://{place}", str(target)], env=base_env(work), check=True,
                       capture_output=True)
        seconds = time.perf_counter() - started
        got, restored = day, target
    verified = tree_digest(restored) == digests[got]
    shutil.rmtree(target)
    return {"seconds": round(seconds, 3), "verified_sha256": verified,
            "restored_day": str(got), "days_earlier_than_asked": (day - got).days}
