"""python -m benchmarks [all|overhead|simulate|treeops|archive|archive-overhead|cost|scale]
    [--quick] [--days N] [--files N] [--size-scale S] [--full-only]

Prints a table of figures and writes them as JSON (benchmarks/results/). ``all`` runs
every benchmark but ``scale`` (100,000 files, about 3 GB: hours on a shared machine;
``--quick``: minutes), which runs only when named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import archive, archiveoverhead, costmodel, overhead, scale, simulate, treeops
from benchmarks.common import DUPLICITY, own_gnupg


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    dup = subprocess.run([DUPLICITY, "--version"], capture_output=True, text=True).stdout
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {dup.strip()}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("what", nargs="?", default="all",
                        choices=["all", "overhead", "simulate", "treeops", "archive",
                                 "archive-overhead", "cost", "scale"])
    parser.add_argument("--quick", action="store_true",
                        help="small data, 20 simulated days, 3-year tree, 128 MiB bags")
    parser.add_argument("--days", type=int, help="simulated days (default 20 quick, 365 full)")
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument("--out", type=Path, help="JSON output file")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--files", type=int, help="scale: files in the source (default "
                        "100,000; 20,000 with --quick)")
    parser.add_argument("--size-scale", type=float, help="scale: multiply every file size "
                        "(default 1: about 3 GB at 100,000 files; 0.1 with --quick)")
    parser.add_argument("--full-only", action="store_true",
                        help="scale: only the first backup (cya's full and a plain full, "
                        "time and peak memory), e.g. --files 200000 --size-scale 0.05")
    args = parser.parse_args()
    days = args.days or (20 if args.quick else 365)
    os.environ["PATH"] = f"{Path(__import__('sys').executable).parent}:{os.environ['PATH']}"
    results: dict = {"machine": machine(), "quick": args.quick}
    with tempfile.TemporaryDirectory(dir=args.work) as scratch, own_gnupg(Path(scratch)):
        work = Path(scratch)
        for name, job in (("overhead", lambda: overhead.run(work, args.quick, args.seed)),
                          ("simulate", lambda: simulate.run(work, args.quick, args.seed, days)),
                          ("treeops", lambda: treeops.run(work, args.quick)),
                          ("archive", lambda: archive.run(work, args.quick, args.seed)),
                          ("archive-overhead",
                           lambda: archiveoverhead.run(work, args.quick, args.seed)),
                          ("cost", lambda: costmodel.run(work, args.quick, args.seed)),
                          ("scale", lambda: scale.run(work, args.quick, args.seed, args.files,
                                                      args.size_scale, args.full_only))):
            if args.what == name or (args.what == "all" and name != "scale"):
                started = time.perf_counter()
                results[name] = job()
                results[name]["benchmark_seconds"] = round(time.perf_counter() - started, 1)
                print_section(name, results[name])
    prefix = "scale-" if args.what == "scale" else ""
    out = args.out or Path(__file__).parent / "results" / time.strftime(
        f"{prefix}%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nmachine: {results['machine']}\nwritten: {out}")


def run_alone(name: str, work: Path | None, out: Path | None,
              job: Callable[[Path], dict]) -> None:
    """A benchmark run on its own (``python -m benchmarks.NAME``): ``job`` in a scratch
    directory under ``work`` with a gpg home of its own; print its figures and write them
    as JSON to ``out`` (default: results/NAME-<time>.json)."""
    with tempfile.TemporaryDirectory(dir=work) as scratch, own_gnupg(Path(scratch)):
        result = {"machine": machine(), **job(Path(scratch))}
    print_section(name, result)
    out = out or Path(__file__).parent / "results" / time.strftime(f"{name}-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten: {out}")


def run_sized(name: str, job: Callable[[Path, int, float, int, int], dict], *,
              size_scale: float, size_help: str, rounds: int, seed: int) -> None:
    """``python -m benchmarks.NAME [--files N] [--size-scale S] [--rounds N] [--seed N]
    [--work DIR] [--out FILE]``: ``job(work, files, size_scale, rounds, seed)`` run alone."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}")
    parser.add_argument("--files", type=int, default=25_000)
    parser.add_argument("--size-scale", type=float, default=size_scale, help=size_help)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="JSON output file")
    args = parser.parse_args()
    run_alone(name, args.work, args.out, lambda work: job(
        work, args.files, args.size_scale, args.rounds, args.seed))


def print_section(name: str, data: dict, indent: str = "") -> None:
    if not indent:
        print(f"\n== {name} ==")
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            print_section(key, value, indent + "  ")
        else:
            print(f"{indent}{key}: {value}")


if __name__ == "__main__":
    main()
