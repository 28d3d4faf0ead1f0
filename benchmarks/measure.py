"""Run a command and measure it: wall time, CPU time (user + sys of the whole process
tree: every descendant is waited for, so its parent's ``wait4`` counts it), peak RSS
of the largest process in the tree and, for cya, of cya's own process.

    python -m benchmarks.measure OUT cya ARGS...   (used by ``run``: cya's own peak RSS)

With ``CYA_BENCHMARK_NO_RECORDING=1`` in its environment, that cya run records no
metadata (``cya.metadata.record`` leaves the metadata directory as it is): what a
backup costs without the recording, for benchmarks/metadata.py. Only here, never in
cya itself.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TIME = "/usr/bin/time"  # GNU time: wall, user, sys and peak RSS of what it waits for


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the whole process tree
    peak_rss_mb: float  # the largest process of the tree
    own_rss_mb: float | None = None  # cya's own process (None: not cya)
    child_rss_mb: float | None = None  # the largest process cya started (duplicity, gpg)

    def as_json(self) -> dict:
        return {key: round(value, 3) if isinstance(value, float) else value
                for key, value in asdict(self).items()}


def run(argv: list[str], env: dict, cwd: Path | None = None, cya: bool = False,
        output: Path | None = None) -> Measured:
    """Run ``argv`` (with ``cya``: argv[0] is cya, run under this module to learn its own
    peak RSS); raise RuntimeError if it fails. Its output goes to ``output`` (or
    nowhere)."""
    report = None
    if cya:
        report = Path(env.get("TMPDIR", "/tmp")) / f"cya-measure-{os.getpid()}-{time.time_ns()}"
        argv = [sys.executable, "-m", "benchmarks.measure", str(report), *argv[1:]]
        env = {**env, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parent.parent)]
            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))}
    figures = Path(f"{report or output or '/tmp/cya-measure'}.time.{os.getpid()}")
    # GNU time starts the command: a child's peak RSS counts its parent's at fork, and
    # time is small where this process is not
    argv = [TIME, "-o", str(figures), "-f", "%e %U %S %M", *argv]
    sink = open(output, "wb") if output is not None else subprocess.DEVNULL
    errors = open(f"{output}.err" if output is not None else f"{figures}.err", "wb")
    try:
        done = subprocess.run(argv, env=env, cwd=cwd, stdout=sink, stderr=errors)
    finally:
        if output is not None:
            sink.close()
        errors.close()
    if done.returncode != 0:
        detail = Path(errors.name).read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{argv[5:9]} exited {done.returncode}: {detail}")
    if output is None:
        Path(errors.name).unlink()
    wall, user, system, peak = figures.read_text().split()[-4:]
    figures.unlink()
    own = child = None
    if report is not None:
        own, child = json.loads(report.read_text())
        report.unlink()
    return Measured(float(wall), float(user) + float(system), int(peak) / 1024, own, child)


def main() -> None:
    """Run cya's command line in this process and write [own, children] peak RSS (MB)."""
    import atexit

    out = Path(sys.argv[1])

    def write() -> None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out.write_text(json.dumps([own, children]))

    atexit.register(write)
    if os.environ.get("CYA_BENCHMARK_NO_RECORDING") == "1":
        _without_recording()
    sys.argv = ["cya", *sys.argv[2:]]
    from cya.cli import main as cya_main

    cya_main()


def _without_recording() -> None:
    from cya import metadata

    def record(sources, out_dir: Path, skip=(), **options) -> metadata.RecordStats:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return metadata.RecordStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0)

    metadata.record = record


if __name__ == "__main__":
    main()
