"""Browsing at scale without the hours of ``scale``: ``cya ls --date`` and ``cya find``
on a tree whose backups hold a large source of tiny files.

    python -m benchmarks.browse [--files N] [--work DIR] [--runs N]

The source is ``scale``'s (benchmarks/scalesource.py: about 100 files a directory,
a symlink every 1,000 files, 1% changed, 0.2% added and 0.1% deleted a day) with
every size scaled down to a few bytes: what browsing reads is the file index, whose
size depends on the number of paths, not on their bytes. The tree gets a full, the
first backups of two later months and of a week, and three daily backups, with the
days between them churned, so that the newest backup's chain has a delta on every
level. ``--work DIR`` keeps the tree there and reuses it on the next run (the same
tree before and after a change to cya).

Each command runs ``--runs`` times (default 5): the median wall and CPU time, and the
peak RSS of cya's own process. Output goes to a file, as a pipe would take it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import date, timedelta
from pathlib import Path

from benchmarks import measure
from benchmarks.common import CYA, base_env, cya_setup, median, own_gnupg
from benchmarks.scale import noon
from benchmarks.scalesource import ScaleSource

FIRST = date(2013, 5, 1)
BACKUPS = (date(2013, 5, 1), date(2013, 6, 2), date(2013, 6, 30), date(2013, 7, 7),
           date(2013, 7, 8), date(2013, 7, 9), date(2013, 7, 10))
SIZE_SCALE = 0.002  # a few bytes a file: the index, not the data, is what is measured


def build(work: Path, files: int, seed: int) -> dict:
    """A source of ``files`` tiny files, a cya tree and its backups; return the
    environment that selects the tree and what the commands need to know."""
    source = ScaleSource(work / "source", seed, files, SIZE_SCALE, FIRST - timedelta(days=1))
    env = cya_setup(work, source.root)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cya starts as installed: compiled
    day = FIRST
    for backup in BACKUPS:
        while day < backup:
            day += timedelta(days=1)
            source.churn(day)
        measure.run([CYA, "--now", noon(backup), "backup"], env)
    directory = source.path(source.live[len(source.live) // 2]).parent
    state = {"env": {key: env[key] for key in ("CYA_CONFIG", "XDG_CACHE_HOME",
                                                 "XDG_CONFIG_HOME", "PASSPHRASE")},
             "root": str(source.root), "directory": str(directory),
             "date": noon(BACKUPS[-1]), "files": len(source.live)}
    (work / "browse.json").write_text(json.dumps(state, indent=2))
    return state


def timings(work: Path, state: dict, runs: int) -> dict:
    env = {**base_env(work), **state["env"]}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    root, end = state["root"], state["date"]
    commands = {
        "version": ("--version",),
        "ls_date_directory": ("ls", "--date", end, state["directory"]),
        "ls_date_whole_source": ("ls", "--date", end, root),
        "find_name": ("find", "f00123*"),
        "find_path_glob": ("find", f"{root}/**/d0004*/*.txt"),
    }
    out = work / "browse.out"
    result = {}
    for name, args in commands.items():
        measured = [measure.run([CYA, *args], env, cya=True, output=out) for _ in range(runs)]
        result[name] = {"wall": round(median([m.wall for m in measured]), 3),
                        "cpu": round(median([m.cpu for m in measured]), 3),
                        "own_rss_mb": round(max(m.own_rss_mb or 0 for m in measured), 1),
                        "lines": len(out.read_bytes().splitlines())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browse")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, help="keep the tree here, and reuse it")
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(CYA).parent}:{os.environ['PATH']}"
    with tempfile.TemporaryDirectory() as scratch, own_gnupg(Path(scratch)):
        work = args.work or Path(scratch) / "browse"
        work.mkdir(parents=True, exist_ok=True)
        saved = work / "browse.json"
        state = json.loads(saved.read_text()) if saved.exists() else build(
            work, args.files, args.seed)
        print(f"{state['files']} files in the newest backup; {len(BACKUPS)} backups")
        for name, row in timings(work, state, args.runs).items():
            print(f"{name:22} wall {row['wall']:6.3f} s  cpu {row['cpu']:6.3f} s  "
                  f"rss {row['own_rss_mb']:6.1f} MB  {row['lines']:>7} lines")


if __name__ == "__main__":
    main()
