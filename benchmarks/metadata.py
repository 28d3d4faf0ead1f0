"""Metadata recording: its cost on a daily backup of a 100,000-file source.

    python -m benchmarks.metadata [--files N] [--pairs N] [--seed S] [--work DIR]

1. ``record()`` as cya does it (one walk: ``lstat`` + ``os.listxattr``/``getxattr``)
   against the acl/attr tools (``getfacl -R`` and ``getfattr -R`` processes, plus
   the walk for links, holes and times that the tools do not give), median of 3.
2. A plain ``duplicity incremental`` of the source (from ``/`` with an
   ``--include``, as cya runs it) without the metadata, against ``record()`` plus
   the same incremental with the metadata directory included; interleaved pairs
   (A B / B A) after a daily churn of 1% changed, 0.2% added, 0.1% deleted.

The source: fixed seed, sizes drawn around 2 KiB, a few hundred files with user
xattrs and ACLs, a hundred hard-link pairs, five sparse files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import DUPLICITY, Source, base_env, median
from cya import metadata
from cya.core import metadata as formats
from cya.duplicity import glob_escape

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
                       (formats.MTIME_FILE, formats.format_times(scan.times))):
        metadata._write(out / name, data)


def seconds_of(job) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def duplicity_run(work: Path, name: str, includes: list[Path], when: int) -> float:
    target = work / name
    action = "incremental" if target.exists() and any(target.iterdir()) else "full"
    target.mkdir(exist_ok=True)
    selection = []
    for path in includes:
        selection += ["--include", glob_escape(str(path))]
    argv = [DUPLICITY, action, "--no-encryption", "--current-time", str(when),
            "--archive-dir", str(work / "dupcache"), "--name", name, *selection,
            "--exclude", "**", "/", f"file://{target}"]
    started = time.perf_counter()
    done = subprocess.run(argv, env=base_env(work), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"duplicity exited {done.returncode}: {done.stderr[-2000:]}")
    # duplicity's own statistics: how many files it looked at and how much it stored
    for key in ("SourceFiles", "ChangedFiles", "DeltaEntries", "TotalDestinationSizeChange"):
        found = re.search(rf"^{key} (\d+)", done.stdout, re.MULTILINE)
        STATISTICS.setdefault(name, {})[key] = int(found.group(1)) if found else None
    return elapsed


def run(work: Path, files: int, pairs: int, seed: int) -> dict:
    started = time.perf_counter()
    source = Source(work / "source", seed, files, mean_size=2048)
    extras = special(source.root, seed)
    result: dict = {"data": source.describe().replace("~2 KiB", "~2 KiB (exponential)"),
                    "special": extras, "generate_s": round(time.perf_counter() - started, 1)}
    meta = work / "meta"
    stats = metadata.record([source.root], meta)
    result["recorded"] = stats.summary()
    result["metadata_bytes"] = {name: (meta / name).stat().st_size
                                for name in formats.ALL_FILES}
    stdlib = [seconds_of(lambda: metadata.record([source.root], meta)) for _ in range(3)]
    tools = [seconds_of(lambda: record_with_tools(source.root, work / "meta-tools"))
             for _ in range(3)]
    for name in (formats.ACL_FILE, formats.XATTR_FILE):
        # the tools list in readdir order, record() in name order: compare per-file blocks
        ours, theirs = ((where / name).read_bytes().split(b"\n\n")
                        for where in (meta, work / "meta-tools"))
        result.setdefault("tools_blocks_identical", {})[name] = sorted(ours) == sorted(theirs)
    result["record_s"] = {"stdlib_median": round(median(stdlib), 3),
                          "tools_median": round(median(tools), 3),
                          "stdlib_runs": [round(t, 3) for t in stdlib],
                          "tools_runs": [round(t, 3) for t in tools]}
    shutil.rmtree(work / "meta-tools")
    full_without = duplicity_run(work, "without", [source.root], START)
    full_record = seconds_of(lambda: metadata.record([source.root], meta))
    full_with = duplicity_run(work, "with", [source.root, meta], START)
    result["full_s"] = {"without": round(full_without, 1),
                        "with": round(full_record + full_with, 1)}
    rows = []
    for day in range(1, pairs + 1):
        source.churn()
        when = START + day * 86_400

        def without(when=when) -> float:
            return duplicity_run(work, "without", [source.root], when)

        def with_metadata(when=when) -> tuple[float, float]:
            recording = seconds_of(lambda: metadata.record([source.root], meta))
            return recording, duplicity_run(work, "with", [source.root, meta], when)

        if day % 2:
            plain = without()
            recording, backup = with_metadata()
        else:
            recording, backup = with_metadata()
            plain = without()
        rows.append({"without_s": round(plain, 2), "record_s": round(recording, 2),
                     "with_s": round(recording + backup, 2),
                     "ratio": round((recording + backup) / plain, 3)})
    result["daily_incremental"] = {
        "pairs": rows,
        "without_median_s": round(median([r["without_s"] for r in rows]), 2),
        "with_median_s": round(median([r["with_s"] for r in rows]), 2),
        "record_median_s": round(median([r["record_s"] for r in rows]), 2),
        "ratio_median": round(median([r["ratio"] for r in rows]), 3),
    }
    result["last_incremental_statistics"] = dict(STATISTICS)
    result["benchmark_s"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metadata")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=6, help="interleaved daily pairs")
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="JSON output file")
    args = parser.parse_args()
    from benchmarks.__main__ import machine, print_section

    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        result = {"machine": machine(), **run(Path(scratch), args.files, args.pairs, args.seed)}
    print_section("metadata", result)
    out = args.out or Path(__file__).parent / "results" / time.strftime(
        "metadata-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
