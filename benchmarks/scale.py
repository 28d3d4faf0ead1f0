"""cya against plain duplicity at scale: 100,000 files, about 3 GB, encryption on.

    python -m benchmarks scale [--quick] [--files N] [--size-scale S]

One generated source (benchmarks/scalesource.py: fixed seed, mixed sizes, 1% of the
files changed, 0.2% added, 0.1% deleted a day), backed up by ``cya backup`` and by
plain ``duplicity full|incremental SOURCE file://TARGET`` with the same passphrase:

1. the first backup: cya's (a full) and a plain full, one pair;
2. history: a backup on each Sunday (the first of its week, and of its month when
   the week starts one) for half a year, seven days of churn before each; the month
   and year chains come out as daily backups would leave them. Plain duplicity backs
   up the same Sundays into the chain of its first full (the "aged" chain);
3. two weeks of daily pairs (cya, plain duplicity; the order alternates), plain
   duplicity starting a new chain on the first: plain days, the first backup of a
   week and the first of a month, each as cya vs plain duplicity on the same data.
   Each day the aged chain gets its increment too: cya's leaf reads a chain built
   over the same months, so cya against the aged chain is cya's own cost, and the
   aged chain against the fresh one what a long chain costs duplicity itself.
   The first backup of a week or a month stores what changed since the week's or
   the month's first backup before it (it joins the month's or the year's chain):
   two more plain chains do the same, a *monthly* one (the first full, then only
   each month's first backup) and a *weekly* one (a copy of the monthly chain at
   each month's first backup, then each week's first backup): the "same changes"
   column, plain duplicity storing the same changes on a chain shaped like cya's;
4. restores, every one checked against the source as it was (SHA-256 of every file
   and symlink): the newest state (cya; plain duplicity's chain of 13 increments),
   the reference (plain duplicity, a full and 7 increments), and 30, 90 and 180 days
   back (cya, from whatever its trimmed tree holds);
5. ``cya ls --date D PATH`` (a directory, and the whole source) and ``cya find`` (a
   name, and a path glob), median of 3, against ``duplicity list-current-files``;
6. sizes: the tree against the plain chain, the catalog and its file index rows.

Every row gives wall time and CPU time (user + sys of the whole process tree),
ratios of both, and peak RSS (cya's own process apart from duplicity's). The
machine is shared: CPU time is the steadier figure. ``--quick``: 20,000 files of a
tenth of the size, two months of history, restores 30 and 60 days back.
``--full-only``: step 1 alone (a full's time and memory at any size).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from benchmarks import measure
from benchmarks.common import (
    CYA,
    DUPLICITY,
    PASSPHRASE,
    base_env,
    cya_setup,
    fresh,
    median,
    stored,
)
from benchmarks.scalesource import ScaleSource
from cya.core.timescale import leaf_for


@dataclass(frozen=True)
class Plan:
    files: int
    size_scale: float
    first: date  # the first backup (a Wednesday)
    history_end: date  # the last Sunday of the history
    daily_start: date  # plain duplicity's new chain starts here
    daily_end: date
    restore_days_back: tuple[int, ...]


FULL = Plan(100_000, 1.0, date(2013, 1, 2), date(2013, 6, 30), date(2013, 7, 1),
            date(2013, 7, 14), (30, 90, 180))
QUICK = Plan(20_000, 0.1, date(2013, 5, 1), date(2013, 6, 30), date(2013, 7, 1),
             date(2013, 7, 14), (30, 60))


def noon(day: date) -> str:
    return f"{day}T12:00:00Z"


def kind_of_day(day: date, previous: date) -> str:
    leaf, before = leaf_for(day), leaf_for(previous)
    if leaf == before:
        return "plain_day"
    return "first_of_month" if leaf.parent != before.parent else "first_of_week"


class Bench:
    def __init__(self, work: Path, plan: Plan, seed: int):
        self.work = work
        self.plan = plan
        self.source = ScaleSource(work / "source", seed, plan.files, plan.size_scale,
                                  plan.first - timedelta(days=1))
        self.env = cya_setup(work, self.source.root)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # cya starts as installed: compiled
        self.plain_env = {**base_env(work), "PASSPHRASE": PASSPHRASE}
        self.plain_env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.states: dict[date, str] = {}  # the source's digest on each backup day
        self.chain = 0  # plain duplicity's current chain

    # -- runs ----------------------------------------------------------------------

    def cya(self, *args: str, output: Path | None = None) -> measure.Measured:
        return measure.run([CYA, *args], self.env, cya=True, output=output)

    def cya_backup(self, day: date) -> measure.Measured:
        return self.cya("--now", noon(day), "backup")

    def plain_target(self) -> Path:
        return self.work / f"plain-{self.chain}"

    def plain_backup(self, day: date, full: bool = False, chain: int | None = None
                     ) -> measure.Measured:
        """A plain duplicity backup into ``chain`` (default: the current one)."""
        chain = self.chain if chain is None else chain
        target = self.work / f"plain-{chain}"
        action = "full" if full or not target.exists() else "incremental"
        target.mkdir(exist_ok=True)
        stamp = str(int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()))
        return measure.run([DUPLICITY, action, "--current-time", stamp,
                            "--archive-dir", str(self.work / "plain-cache"),
                            "--name", f"plain-{chain}", "--num-retries", "1",
                            str(self.source.root), f"file://{target}"], self.plain_env)

    def record_state(self, day: date) -> None:
        self.states[day] = self.source.digest()

    # -- phases ----------------------------------------------------------------------

    def branch(self, chain: str | int, copy: str | int) -> None:
        """Make plain chain ``copy`` what ``chain`` is now: its files hardlinked (duplicity
        never changes one it wrote), duplicity's cache of it copied."""
        for base, link in ((self.work, True), (self.work / "plain-cache", False)):
            target = base / f"plain-{copy}"
            shutil.rmtree(target, ignore_errors=True)
            subprocess.run(["cp", "-al" if link else "-a", str(base / f"plain-{chain}"),
                            str(target)], check=True)

    def same_changes(self, day: date, kind: str) -> measure.Measured | None:
        """On the first backup of a month or a week, the plain backup that stores the same
        changes as cya's (see the module's docstring); keep the weekly chain cya-shaped."""
        measured = None
        if kind == "first_of_month":
            measured = self.plain_backup(day, chain=MONTHLY)
            self.branch(MONTHLY, WEEKLY)
        elif kind == "first_of_week":
            measured = self.plain_backup(day, chain=WEEKLY)
        return measured

    def first(self) -> dict:
        day = self.plan.first
        self.record_state(day)
        mine = self.cya_backup(day)
        plain = self.plain_backup(day, full=True)
        self.branch(AGED, MONTHLY)
        self.branch(AGED, WEEKLY)
        return pair(mine, plain)

    def history(self) -> dict:
        day, runs = self.plan.first, []
        sunday = day + timedelta(days=(6 - day.weekday()) % 7 or 7)
        while sunday <= self.plan.history_end:
            previous = day
            while day < sunday:
                day += timedelta(days=1)
                self.source.churn(day)
            self.record_state(day)
            runs.append(self.cya_backup(day))
            self.plain_backup(day, chain=AGED)
            self.same_changes(day, kind_of_day(day, previous))
            sunday += timedelta(days=7)
        while day < self.plan.daily_start - timedelta(days=1):
            day += timedelta(days=1)
            self.source.churn(day)
        return {"backups": len(runs), "cya_median": summary(runs)}

    def daily(self) -> dict:
        self.chain += 1
        rows: dict[str, list[dict]] = {}
        day = self.plan.daily_start
        previous = day - timedelta(days=1)
        number = 0
        while day <= self.plan.daily_end:
            self.source.churn(day)
            self.record_state(day)
            kind = kind_of_day(day, previous)
            if day == self.plan.daily_start:  # plain duplicity starts its chain
                self.plain_backup(day, full=True)
                rows.setdefault("plain_day_unpaired", []).append(
                    {"cya": self.cya_backup(day).as_json()})
                self.plain_backup(day, chain=AGED)
                self.same_changes(day, kind)
            elif number % 2:
                plain = self.plain_backup(day)
                aged = self.plain_backup(day, chain=AGED)
                same = self.same_changes(day, kind)
                rows.setdefault(kind, []).append(
                    {"day": str(day), **pair(self.cya_backup(day), plain),
                     "aged": aged.as_json(), **({"same": same.as_json()} if same else {})})
            else:
                mine = self.cya_backup(day)
                aged = self.plain_backup(day, chain=AGED)
                same = self.same_changes(day, kind)
                rows.setdefault(kind, []).append(
                    {"day": str(day), **pair(mine, self.plain_backup(day)),
                     "aged": aged.as_json(), **({"same": same.as_json()} if same else {})})
            previous, day, number = day, day + timedelta(days=1), number + 1
        rows.pop("plain_day_unpaired", None)
        return {kind: pairs_summary(pairs) for kind, pairs in rows.items()}

    def restores(self) -> dict:
        end = self.plan.daily_end
        reference_day = self.plan.daily_start + timedelta(days=7)
        result = {"reference_full_plus_7": self.restore_plain(reference_day)}
        mine = self.restore_cya(end)
        plain = self.restore_plain(end)
        result["newest"] = {**pair_of(mine, plain), "cya_checked": mine["checked"],
                            "plain_checked": plain["checked"]}
        for back in self.plan.restore_days_back:
            result[f"{back}_days_back"] = self.restore_cya(end - timedelta(days=back))
        reference = result["reference_full_plus_7"]
        for key in ["newest", *(f"{b}_days_back" for b in self.plan.restore_days_back)]:
            row = result[key]
            own = row.get("cya", row)
            row["vs_reference_cpu"] = round(own["cpu"] / reference["cpu"], 2)
            row["vs_reference_wall"] = round(own["wall"] / reference["wall"], 2)
        return result

    def restore_cya(self, day: date) -> dict:
        target = self.work / "restored" / f"cya-{day}"
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(exist_ok=True)
        out = self.work / "restore.out"
        run = self.cya("restore", "--date", f"{day}T23:00:00Z", "--target", str(target),
                       output=out)
        text = out.read_text()
        got = date.fromisoformat(text.split(" as of ", 1)[1][:10])
        chain = int(text.split("(chain of ", 1)[1].split(",", 1)[0])
        checked = tree_digest(target / self.source.root.relative_to("/")) == self.states[got]
        shutil.rmtree(target)
        return {**run.as_json(), "asked": str(day), "restored": str(got), "chain": chain,
                "checked": checked}

    def restore_plain(self, day: date) -> dict:
        target = self.work / "restored" / f"plain-{day}"
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(exist_ok=True)
        run = measure.run([DUPLICITY, "restore", "--time", noon(day).replace("-", "")
                           .replace(":", ""), "--archive-dir", str(self.work / "restore-cache"),
                           "--name", f"restore-{day}", "--num-retries", "1",
                           f"file://{self.plain_target()}", str(target)], self.plain_env)
        checked = tree_digest(target) == self.states[day]
        shutil.rmtree(target)
        shutil.rmtree(self.work / "restore-cache", ignore_errors=True)
        return {**run.as_json(), "asked": str(day), "checked": checked}

    def browsing(self) -> dict:
        end = noon(self.plan.daily_end)
        root = self.source.root
        directory = self.source.path(self.source.live[len(self.source.live) // 2]).parent
        commands = {
            "ls_date_directory": ("ls", "--date", end, str(directory)),
            "ls_date_whole_source": ("ls", "--date", end, str(root)),
            "find_name": ("find", "f00123*"),
            "find_path_glob": ("find", f"{root}/**/d0004*/*.txt"),
        }
        result = {}
        out = self.work / "browse.out"
        for name, args in commands.items():
            runs = [self.cya(*args, output=out) for _ in range(3)]
            result[name] = {**summary(runs), "lines": len(out.read_text().splitlines())}
        plain = measure.run([DUPLICITY, "list-current-files", "--archive-dir",
                             str(self.work / "plain-cache"), "--name", f"plain-{self.chain}",
                             f"file://{self.plain_target()}"], self.plain_env, output=out)
        result["duplicity_list_current_files"] = plain.as_json()
        return result

    def sizes(self) -> dict:
        tree = Path(self.env["CYA_CONFIG"]).parent / "tree"
        catalog = tree / ".cya" / "catalog.sqlite"
        rows = subprocess.run(["sqlite3", str(catalog), "SELECT count(*), sum(length(delta)) "
                               "FROM file_index"], capture_output=True, text=True)
        count, index_bytes = (rows.stdout.strip().split("|") + ["", ""])[:2]
        backups = subprocess.run(["sqlite3", str(catalog), "SELECT count(*) FROM backups"],
                                 capture_output=True, text=True).stdout.strip()
        return {"tree_bytes": stored(tree)[0], "plain_chain_bytes":
                stored(self.plain_target())[0], "catalog_bytes": catalog.stat().st_size,
                "index_rows": int(count or 0), "index_bytes": int(index_bytes or 0),
                "backups_recorded": int(backups or 0)}


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's and symlink's path (relative to ``root``) and content."""
    found = []
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        for name in [*names, *(d for d in dirs if os.path.islink(os.path.join(directory, d)))]:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            if os.path.islink(path):
                found.append((relative, "link:" + os.readlink(path)))
            elif os.path.isfile(path):
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                found.append((relative, digest.hexdigest()))
    return hashlib.sha256(repr(sorted(found)).encode()).hexdigest()


def pair(mine: measure.Measured, plain: measure.Measured) -> dict:
    return pair_of(mine.as_json(), plain.as_json())


def pair_of(mine: dict, plain: dict) -> dict:
    return {"cya": mine, "duplicity": plain,
            "ratio_cpu": round(mine["cpu"] / plain["cpu"], 3),
            "ratio_wall": round(mine["wall"] / plain["wall"], 3)}


def summary(runs: list[measure.Measured]) -> dict:
    return {"wall": round(median([r.wall for r in runs]), 3),
            "cpu": round(median([r.cpu for r in runs]), 3),
            "peak_rss_mb": round(max(r.peak_rss_mb for r in runs), 1),
            "own_rss_mb": round(max(r.own_rss_mb or 0 for r in runs), 1)}


AGED = 0  # plain duplicity's first chain, kept going beside cya's history and days
MONTHLY, WEEKLY = "monthly", "weekly"  # the chains that store what cya's new levels store


def pairs_summary(pairs: list[dict]) -> dict:
    aged = [p for p in pairs if "aged" in p]
    extra = {"aged_cpu_median": round(median([p["aged"]["cpu"] for p in aged]), 3),
             "ratio_to_aged_cpu_median": round(median(
                 [p["cya"]["cpu"] / p["aged"]["cpu"] for p in aged]), 3),
             "aged_to_fresh_cpu_median": round(median(
                 [p["aged"]["cpu"] / p["duplicity"]["cpu"] for p in aged]), 3)} if aged else {}
    same = [p for p in pairs if "same" in p]
    if same:
        extra.update({
            "same_changes_cpu_median": round(median([p["same"]["cpu"] for p in same]), 3),
            "ratio_to_same_changes_cpu_median": round(median(
                [p["cya"]["cpu"] / p["same"]["cpu"] for p in same]), 3),
            "ratio_to_same_changes_wall_median": round(median(
                [p["cya"]["wall"] / p["same"]["wall"] for p in same]), 3)})
    return {**extra, "pairs": len(pairs),
            "cya_wall_median": round(median([p["cya"]["wall"] for p in pairs]), 3),
            "cya_cpu_median": round(median([p["cya"]["cpu"] for p in pairs]), 3),
            "duplicity_wall_median": round(median([p["duplicity"]["wall"] for p in pairs]), 3),
            "duplicity_cpu_median": round(median([p["duplicity"]["cpu"] for p in pairs]), 3),
            "ratio_cpu_median": round(median([p["ratio_cpu"] for p in pairs]), 3),
            "ratio_wall_median": round(median([p["ratio_wall"] for p in pairs]), 3),
            "cya_own_rss_mb_max": max(p["cya"]["own_rss_mb"] for p in pairs),
            "duplicity_rss_mb_max": max(p["duplicity"]["peak_rss_mb"] for p in pairs),
            "days": [p["day"] for p in pairs]}


def run(work: Path, quick: bool, seed: int, files: int | None = None,
        size_scale: float | None = None, full_only: bool = False) -> dict:
    plan = QUICK if quick else FULL
    plan = dataclasses.replace(plan, files=files or plan.files,
                               size_scale=size_scale or plan.size_scale)
    work = fresh(work / "scale")
    bench = Bench(work, plan, seed)
    result: dict = {"data": bench.source.describe(), "plan": {
        "files": plan.files, "size_scale": plan.size_scale, "first": str(plan.first),
        "history": f"Sundays to {plan.history_end}",
        "daily": f"{plan.daily_start}..{plan.daily_end}"},
        "platform": platform.platform()}
    result["full"] = bench.first()
    if full_only:
        shutil.rmtree(work, ignore_errors=True)
        return result
    result["history"] = bench.history()
    result["daily"] = bench.daily()
    result["restore"] = bench.restores()
    result["browse"] = bench.browsing()
    result["sizes"] = bench.sizes()
    result["source_after"] = bench.source.describe()
    shutil.rmtree(work, ignore_errors=True)
    return result
