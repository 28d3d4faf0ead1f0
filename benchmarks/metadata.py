"""Metadata recording: its cost on a daily backup of a 100,000-file source.

    python -m benchmarks.metadata [--files N] [--pairs N] [--seed S] [--work DIR] [--out F]

1. ``record()`` alone, median of 3, wall and CPU: cold (no cache: every xattr
   read, mtimes.txt written afresh), warm (the cache of the recording before:
   what ``cya backup`` does every day), and the acl/attr tools (``getfacl -R``
   and ``getfattr -R`` processes, plus the walk for links, holes and times that
   the tools do not give).
2. A plain ``duplicity incremental`` of the source (from ``/`` with an
   ``--include``, as cya runs it) without the metadata, against ``record()``
   (with its cache, as ``cya backup``) plus the same incremental with the
   metadata directory included (the selection options cya's own code gives);
   interleaved pairs (A B / B A) after a daily churn of 1% changed, 0.2% added,
   0.1% deleted. Wall time and CPU time (user + system of this process for
   ``record()`` and of duplicity and its children), since on a shared machine
   wall times are noisy.
3. The ``exclude`` globs: ``record()`` of a small source of which half lies
   under ``.cache`` directories, with and without ``**/.cache`` excluded.
4. ``cya backup`` itself, daily, with and without the recording (``--cya-pairs``):
   two trees of the same source, one backed up by cya as it is, the other by cya
   with ``metadata.record`` left out (benchmarks/measure.py), interleaved pairs after
   the same daily churn; CPU and wall of the whole process tree, cya's own peak RSS.
   This is the daily backup a user runs (encrypted, cya's own work included).

The source: fixed seed, sizes drawn around 2 KiB, a few hundred files with user
xattrs and ACLs, a hundred hard-link pairs, five sparse files.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from benchmarks import measure
from benchmarks.common import CYA, DUPLICITY, Source, base_env, cya_setup, median
from cya import metadata
from cya.config import Settings
from cya.core import metadata as formats
from cya.duplicity import selection

START = 1_700_000_000  # the first backup's time; each later one a day on
STATISTICS: dict[str, dict] = {}  # the last run's statistics per duplicity target


def special(source: Path, seed: int) -> dict:
    """Give some of the source's files what duplicity loses; return how many of each."""
    rng = random.Random(seed + 1)
    files = sorted(source.rglob("*.dat"))
    picked = rng.sample(files, 500)
    for path in picked[:200]:
        os.setxattr(path, "user.comment", f"note {path.name}".encode())
    acl = formats.encode_acl((*formats.base_acl(0o640), formats.AclEntry(formats.USER, 65534, 6),
                              formats.AclEntry(formats.MASK, None, 6)))
    for path in picked[200:300]:
        os.setxattr(path, formats.ACL_ACCESS, acl)
    for number, path in enumerate(picked[300:400]):
        os.link(path, path.with_name(f"link{number:03d}.lnk"))
    sparse = source / "sparse"
    sparse.mkdir(exist_ok=True)
    for number in range(5):
        with open(sparse / f"image{number}.img", "wb") as handle:
            handle.truncate(16 << 20)
            handle.seek(rng.randrange(16 << 20))
            handle.write(rng.randbytes(4096))
    return {"xattrs": 200, "acls": 100, "link_pairs": 100, "sparse_16MiB": 5}


def record_with_tools(source: Path, out: Path) -> None:
    """What ``record`` writes, with the ACLs and xattrs read by getfacl and getfattr."""
    relative = str(source).lstrip("/")
    acls = subprocess.run(["getfacl", "--recursive", "--skip-base", "--physical", relative],
                          cwd="/", capture_output=True, check=True).stdout
    dump = subprocess.run(["getfattr", "--recursive", "--dump", "--match=-",
                           "--encoding=base64", "--no-dereference", "--physical", relative],
                          cwd="/", capture_output=True, check=True).stdout
    kept = []
    for block in dump.split(b"\n\n"):
        lines = [line for line in block.split(b"\n")
                 if line and not line.startswith(b"system.posix_acl_")]
        if len(lines) > 1:
            kept.append(b"\n".join(lines) + b"\n\n")
    scan = metadata._scan([source], (), read_xattrs=False)
    groups = [formats.LinkGroup(tuple(names)) for names in scan.inodes.values()
              if len(names) > 1]
    out.mkdir(parents=True, exist_ok=True)
    for name, data in ((formats.ACL_FILE, acls), (formats.XATTR_FILE, b"".join(kept)),
                       (formats.HARDLINK_FILE, formats.format_links(groups)),
                       (formats.SPARSE_FILE, formats.format_sparse(scan.sparse)),
                       (formats.MTIME_FILE, formats.format_time_blocks(scan.time_blocks))):
        metadata._write(out / name, data)


class Clock:
    """Wall and CPU seconds of what runs between start() and stop(): user + system time
    of this process and of the children it waited for (duplicity)."""

    @staticmethod
    def _cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def run(self, job: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), self._cpu()
        try:
            return job()
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += self._cpu() - cpu


def timed(job: Callable[[], object]) -> tuple[float, float]:
    clock = Clock()
    clock.run(job)
    return clock.wall, clock.cpu


def duplicity_run(work: Path, name: str, includes: list[Path], when: int,
                  exclude: tuple[str, ...] = ()) -> None:
    target = work / name
    action = "incremental" if target.exists() and any(target.iterdir()) else "full"
    target.mkdir(exist_ok=True)
    # the selection cya gives duplicity: the source, then the metadata directory
    settings = Settings(config_path=work / "config.toml", tree=work / "tree",
                        sources=(includes[0],), exclude=exclude)
    argv = [DUPLICITY, action, "--no-encryption", "--current-time", str(when),
            "--archive-dir", str(work / "dupcache"), "--name", name,
            *selection(settings, includes[:1], never=(), also=includes[1:]),
            f"file://{target}"]
    done = subprocess.run(argv, env=base_env(work), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"duplicity exited {done.returncode}: {done.stderr[-2000:]}")
    # duplicity's own statistics: how many files it looked at and how much it stored
    for key in ("SourceFiles", "ChangedFiles", "DeltaEntries", "TotalDestinationSizeChange"):
        found = re.search(rf"^{key} (\d+)", done.stdout, re.MULTILINE)
        STATISTICS.setdefault(name, {})[key] = int(found.group(1)) if found else None


def _median_pair(runs: list[tuple[float, float]]) -> dict:
    return {"wall_median": round(median([w for w, _ in runs]), 3),
            "cpu_median": round(median([c for _, c in runs]), 3),
            "runs_wall": [round(w, 3) for w, _ in runs],
            "runs_cpu": [round(c, 3) for _, c in runs]}


def record_alone(source: Path, work: Path) -> dict:
    """record() cold, warm and with the tools, median of 3, wall and CPU."""
    meta, cache = work / "meta-alone", work / "cache-alone"
    cold = []
    for _ in range(3):
        shutil.rmtree(meta, ignore_errors=True)
        cold.append(timed(lambda: metadata.record([source], meta)))
    metadata.record([source], meta, cache=cache)
    # the cache keeps no inode changed within 2 s of its reading: wait that out, as
    # between two daily backups
    time.sleep(2.5)
    metadata.record([source], meta, cache=cache)
    warm = [timed(lambda: metadata.record([source], meta, cache=cache)) for _ in range(3)]
    tools = [timed(lambda: record_with_tools(source, work / "meta-tools")) for _ in range(3)]
    identical = {}
    for name in (formats.ACL_FILE, formats.XATTR_FILE):
        # the tools list in readdir order, record() in name order: compare per-file blocks
        ours, theirs = ((where / name).read_bytes().split(b"\n\n")
                        for where in (meta, work / "meta-tools"))
        identical[name] = sorted(ours) == sorted(theirs)
    stats = metadata.record([source], meta, cache=cache)
    result = {"cold_no_cache": _median_pair(cold), "warm_cache": _median_pair(warm),
              "tools": _median_pair(tools), "tools_blocks_identical": identical,
              "warm_summary": stats.summary(),
              "metadata_bytes": {name: (meta / name).stat().st_size
                                 for name in formats.ALL_FILES},
              "cache_bytes": cache.stat().st_size}
    for path in (meta, cache, work / "meta-tools"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    return result


def excluded_trees(work: Path, seed: int) -> dict:
    """record() of a source with half its files under .cache, with and without the
    exclude glob, median of 3 (CPU and wall)."""
    source = work / "exclude-source"
    rng = random.Random(seed)
    for number in range(20_000):
        top = source / f"p{number % 20:02d}"
        path = (top / ".cache" if number % 2 else top) / f"f{number:05d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(64))
    exclusion = metadata.exclusion(["**/.cache"])
    meta = work / "meta-exclude"
    runs = {"without_exclude": [timed(lambda: metadata.record([source], meta))
                                for _ in range(3)],
            "with_exclude": [timed(lambda: metadata.record([source], meta, exclude=exclusion))
                             for _ in range(3)]}
    stats = metadata.record([source], meta, exclude=exclusion)
    shutil.rmtree(source)
    shutil.rmtree(meta)
    return {"source": "20,000 files in 20 directories, half of them under a .cache in each",
            **{key: _median_pair(value) for key, value in runs.items()},
            "with_exclude_summary": stats.summary()}


def medians(rows: list[dict], keys: tuple[str, ...]) -> dict:
    """``KEY_median`` of each of ``keys`` over the pairs, and the with/without ratio of
    the wall and CPU medians (less swayed than a median of ratios by one slow run)."""
    found = {f"{key}_median": round(median([row[key] for row in rows]), 3) for key in keys}
    for kind in ("wall", "cpu"):
        found[f"ratio_of_medians_{kind}"] = round(
            found[f"with_{kind}_median"] / found[f"without_{kind}_median"], 3)
    return found


def cya_daily(work: Path, source: Source, pairs: int) -> dict:
    """``cya backup`` with and without the recording: a full each, then ``pairs`` days of
    churn, each day's two runs in alternating order."""
    sides = {"with": cya_setup(work, source.root, "cya-with"),
             "without": {**cya_setup(work, source.root, "cya-without"),
                         "CYA_BENCHMARK_NO_RECORDING": "1"}}

    def backup(side: str, day: int) -> measure.Measured:
        when = datetime.fromtimestamp(START + day * 86_400, UTC).isoformat()
        return measure.run([CYA, "--now", when, "backup"], sides[side], cya=True)

    full = {side: backup(side, 0).as_json() for side in sides}
    rows = []
    for day in range(1, pairs + 1):
        source.churn()
        order = ["without", "with"] if day % 2 else ["with", "without"]
        runs = {side: backup(side, day) for side in order}
        rows.append({"order": " ".join(order),
                     **{f"{side}_{kind}": round(getattr(runs[side], kind), 2)
                        for side in sides for kind in ("cpu", "wall")},
                     "ratio_cpu": round(runs["with"].cpu / runs["without"].cpu, 3),
                     "ratio_wall": round(runs["with"].wall / runs["without"].wall, 3),
                     "with_own_rss_mb": runs["with"].own_rss_mb,
                     "without_own_rss_mb": runs["without"].own_rss_mb})
    result = {"full": full, "pairs": rows}
    if rows:
        result.update(medians(rows, ("with_cpu", "without_cpu", "with_wall", "without_wall",
                                     "ratio_cpu", "ratio_wall")))
        result["own_rss_mb_max"] = {side: max(row[f"{side}_own_rss_mb"] for row in rows)
                                    for side in sides}
    return result


def run(work: Path, files: int, pairs: int, seed: int, exclude: tuple[str, ...],
        cya_pairs: int = 0) -> dict:
    started = time.perf_counter()
    source = Source(work / "source", seed, files, mean_size=2048)
    extras = special(source.root, seed)
    result: dict = {"data": source.describe().replace("~2 KiB", "~2 KiB (exponential)"),
                    "special": extras, "exclude": list(exclude),
                    "generate_s": round(time.perf_counter() - started, 1)}
    os.sync()  # the new files' writeback would otherwise run through the first timings
    time.sleep(5)
    result["record_alone_s"] = record_alone(source.root, work)
    result["exclude_s"] = excluded_trees(work, seed)
    meta, cache = work / "meta", work / "metadata-cache"
    exclusion = metadata.exclusion(exclude) if exclude else None

    def record() -> None:
        metadata.record([source.root], meta, cache=cache, exclude=exclusion)

    full_without = timed(lambda: duplicity_run(work, "without", [source.root], START, exclude))
    full_with = timed(lambda: (record(), duplicity_run(work, "with", [source.root, meta], START,
                                                       exclude)))
    result["full_s"] = {"without": [round(x, 1) for x in full_without],
                        "with": [round(x, 1) for x in full_with], "columns": ["wall", "cpu"]}
    rows = []
    for day in range(1, pairs + 1):
        source.churn()
        when = START + day * 86_400
        plain, recording, backup = Clock(), Clock(), Clock()
        order = ["without", "with"] if day % 2 else ["with", "without"]
        for side in order:
            if side == "without":
                plain.run(partial(duplicity_run, work, "without", [source.root], when, exclude))
            else:
                recording.run(record)
                backup.run(partial(duplicity_run, work, "with", [source.root, meta], when,
                                   exclude))
        with_wall, with_cpu = recording.wall + backup.wall, recording.cpu + backup.cpu
        rows.append({
            "order": " ".join(order),
            "without_wall": round(plain.wall, 2), "with_wall": round(with_wall, 2),
            "record_wall": round(recording.wall, 2), "ratio_wall": round(with_wall / plain.wall, 3),
            "without_cpu": round(plain.cpu, 2), "with_cpu": round(with_cpu, 2),
            "record_cpu": round(recording.cpu, 2), "ratio_cpu": round(with_cpu / plain.cpu, 3),
            "duplicity_extra_cpu": round(backup.cpu - plain.cpu, 2),
            "stored_without": STATISTICS["without"]["TotalDestinationSizeChange"],
            "stored_with": STATISTICS["with"]["TotalDestinationSizeChange"]})
    result["daily_incremental"] = {
        "pairs": rows,
        **medians(rows, ("without_wall", "with_wall", "record_wall", "ratio_wall",
                         "without_cpu", "with_cpu", "record_cpu", "ratio_cpu")),
        "duplicity_extra_cpu_median": round(median([row["duplicity_extra_cpu"]
                                                    for row in rows]), 3),
        "stored_extra_median_bytes": median([row["stored_with"] - row["stored_without"]
                                             for row in rows]),
    }
    result["last_incremental_statistics"] = dict(STATISTICS)
    if cya_pairs:
        result["cya_daily"] = cya_daily(work, source, cya_pairs)
    result["benchmark_s"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metadata")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=12, help="interleaved daily pairs")
    parser.add_argument("--cya-pairs", type=int, default=12,
                        help="daily pairs of cya backup with and without the recording (0: none)")
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument("--exclude", action="append", default=[],
                        help="an exclude glob, given to duplicity and record() alike")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="JSON output file")
    args = parser.parse_args()
    from benchmarks.__main__ import run_alone

    run_alone("metadata", args.work, args.out,
              lambda work: run(work, args.files, args.pairs, args.seed, tuple(args.exclude),
                               args.cya_pairs))


if __name__ == "__main__":
    main()
