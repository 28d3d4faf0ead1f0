"""3. Tree operations on a synthetic 10-year tree, built from file names alone.

Every day of ten years gets a backup: empty files named as duplicity names them,
seeded and linked by cya's own placement plan, trimmed by cya's own trim, and a
file index in the catalog (a 2,000-file full, 20 changed paths a day). Then
`cya ls`, `status`, `trim --dry-run` and `find` are timed as a user runs them.
"""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import CYA, cya_setup, fresh, median, noon, timed
from cya.actions.trim import trim_opened
from cya.catalog import BackupRecord
from cya.config import load
from cya.core import fileindex
from cya.core.names import complete_backup_times, format_time
from cya.core.placement import plan_placement
from cya.core.timescale import leaf_for
from cya.opentree import open_tree
from cya.tree import Tree


def _set_names(previous, time) -> list[str]:
    stamp = format_time(time)
    if previous is None:
        return [f"duplicity-full.{stamp}.vol1.difftar.gpg",
                f"duplicity-full-signatures.{stamp}.sigtar.gpg",
                f"duplicity-full.{stamp}.manifest.gpg"]
    pair = f"{format_time(previous)}.to.{stamp}"
    return [f"duplicity-inc.{pair}.vol1.difftar.gpg",
            f"duplicity-new-signatures.{pair}.sigtar.gpg",
            f"duplicity-inc.{pair}.manifest.gpg"]


def build(work: Path, years: int = 10) -> dict:
    empty = work / "empty-source"
    empty.mkdir()
    env = cya_setup(work, empty)
    settings = load(Path(env["CYA_CONFIG"]))
    tree = Tree(settings.tree)
    start = noon(date(2016, 1, 1))
    with open_tree(settings, write=True) as opened:
        catalog = opened.catalog
        catalog.db.execute("PRAGMA synchronous=OFF")  # a throwaway tree: build it fast
        chained: set = set()
        newest = None
        for number in range(365 * years):
            time = start + timedelta(days=number)
            leaf = leaf_for(time.date())
            plan = plan_placement(time, leaf, chained, newest)
            base_files = tree.duplicity_files(plan.base) if plan.base else []
            previous = max(complete_backup_times(base_files), default=None)
            names = _set_names(previous, time)
            for level in plan.new_levels:
                tree.files_dir(level).mkdir(parents=True)
                for name in base_files:
                    os.link(tree.files_dir(plan.base) / name, tree.files_dir(level) / name)
            for name in names:
                (tree.files_dir(leaf) / name).write_bytes(b"x")  # no duplicity file is empty
            for level in plan.link_into:
                for name in names:
                    if level != leaf:
                        os.link(tree.files_dir(leaf) / name, tree.files_dir(level) / name)
            chained |= set(plan.link_into)
            newest = time
            if previous is None:
                delta = [fileindex.Change("A", fileindex.Entry(f"home/me/d{i % 40}/f{i}.txt",
                                                               "file", 1000 + i, 0))
                         for i in range(2000)]
            else:
                delta = [fileindex.Change("M", fileindex.Entry(
                    f"home/me/d{i % 40}/f{(number * 20 + i) % 2000}.txt", "file", number, 0))
                    for i in range(20)]
            catalog.record_backup(BackupRecord(
                format_time(time), leaf.relpath, plan.base.relpath if plan.base else None,
                plan.full, "", "", "", None, None, None, 0,
                format_time(previous) if previous else None), fileindex.encode(delta))
            if time.weekday() == 6 or number == 365 * years - 1:
                # trimming weekly leaves the same final tree as daily, in far less time
                opened.rescan()
                trim_opened(opened, time, dry_run=False)
                chained = set(opened.view.chained())
    return env


def run(work: Path, quick: bool) -> dict:
    work = fresh(work / "treeops")
    years = 3 if quick else 10
    env = build(work, years)
    now = f"{2016 + years - 1}-12-29T13:00:00Z"
    result = {"data": f"{years} years of daily backups (names only), trimmed, "
                      "2,000-file index"}
    commands = {
        "ls": [CYA, "ls"],
        "ls_json": [CYA, "ls", "--json"],
        "status": [CYA, "--now", now, "status"],
        "trim_dry_run": [CYA, "--now", now, "trim", "--dry-run"],
        "find_one_file": [CYA, "find", "f1234.txt"],
        "find_half_the_files": [CYA, "find", "f1*.txt"],
        "cya_version (start-up floor)": [CYA, "--version"],
    }
    for name, argv in commands.items():
        result[f"{name}_s"] = round(median([timed(argv, env=env) for _ in range(5)]), 3)
    levels = subprocess.run([CYA, "ls", "--json"], env=env, capture_output=True, text=True,
                            check=True).stdout.count('"kind"')
    result["levels"] = levels
    return result
