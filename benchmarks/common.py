"""Shared pieces: deterministic data with daily churn, timing, duplicity and cya runners."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

BIN = Path(sys.executable).parent
CYA = str(BIN / "cya")
DUPLICITY = str(BIN / "duplicity")
PASSPHRASE = "benchmark passphrase, not a secret"


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@dataclass
class Source:
    """A directory of files that changes the same way for the same seed and day:
    about 1% of files changed, 0.2% added and 0.1% deleted per day."""

    root: Path
    seed: int
    files: int
    mean_size: int = 8192
    _rng: random.Random = field(init=False)
    _next: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(self.files):
            self._add()

    def describe(self) -> str:
        return (f"{self.files} files of ~{self.mean_size // 1024} KiB, daily churn 1% changed, "
                f"0.2% added, 0.1% deleted, seed {self.seed}")

    def _add(self) -> None:
        number = self._next
        self._next += 1
        path = self.root / f"d{number % 37:02d}" / f"f{number:06d}.dat"
        path.parent.mkdir(exist_ok=True)
        size = max(64, int(self._rng.expovariate(1 / self.mean_size)))
        path.write_bytes(self._rng.randbytes(size))

    def churn(self) -> None:
        existing = sorted(self.root.rglob("*.dat"))
        count = len(existing)
        for path in self._rng.sample(existing, max(1, count // 100)):
            data = bytearray(path.read_bytes())
            at = self._rng.randrange(len(data))
            data[at:at + 256] = self._rng.randbytes(256)
            path.write_bytes(bytes(data))
        for path in self._rng.sample(existing, max(1, count // 1000)):
            path.unlink()
        for _ in range(max(1, count // 500)):
            self._add()


def tree_digest(root: Path) -> str:
    """One SHA-256 over every file's relative path and content."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def stored(root: Path) -> tuple[int, int]:
    """(bytes, objects) under ``root``, each inode once, cya's own state excluded."""
    seen: dict[int, int] = {}
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".cya"]
        for name in names:
            info = os.lstat(os.path.join(directory, name))
            seen[info.st_ino] = info.st_size
    return sum(seen.values()), len(seen)


def timed(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {result.returncode}: "
                           f"{result.stderr[-2000:]}{result.stdout[-1000:]}")
    return elapsed


def base_env(work: Path) -> dict:
    return {**os.environ, "PASSPHRASE": PASSPHRASE, "TZ": "UTC",
            "XDG_CACHE_HOME": str(work / "cache"), "XDG_CONFIG_HOME": str(work / "config")}


def cya_setup(work: Path, source: Path, name: str = "cya", extra: str = "") -> dict:
    """A cya tree and config for ``source``; return the environment that selects it."""
    config = work / name / "config.toml"
    passphrase = work / name / "passphrase"
    config.parent.mkdir(parents=True)
    passphrase.write_text(PASSPHRASE + "\n")
    passphrase.chmod(0o600)
    env = {**base_env(work / name), "CYA_CONFIG": str(config)}
    subprocess.run([CYA, "init", "--source", str(source), "--tree", str(work / name / "tree"),
                    "--passphrase-file", str(passphrase)], env=env, check=True,
                   capture_output=True)
    if extra:
        config.write_text(config.read_text() + extra)
    return env


def duplicity_backup(target: Path, source: Path, day: date, work: Path, name: str,
                     *options: str) -> float:
    """One plain duplicity run into ``target`` (full if there is nothing yet)."""
    action = "incremental" if target.exists() and any(target.iterdir()) else "full"
    target.mkdir(parents=True, exist_ok=True)
    return timed([DUPLICITY, action, *options, "--current-time", str(int(noon(day).timestamp())),
                  "--archive-dir", str(work / "dupcache"), "--name", name,
                  str(source), f"file://{target}"], env=base_env(work))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@contextmanager
def own_gnupg(scratch: Path) -> Iterator[None]:
    """Plain duplicity and gpg in a benchmark use a gpg home under ``scratch``, never
    the real ~/.gnupg, and the agent they start there is stopped at the end."""
    home = scratch / "gnupg"
    home.mkdir(mode=0o700)
    before = os.environ.get("GNUPGHOME")
    os.environ["GNUPGHOME"] = str(home)
    try:
        yield
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, timeout=60)
        if before is None:
            os.environ.pop("GNUPGHOME", None)
        else:
            os.environ["GNUPGHOME"] = before
