"""A large generated source for the ``scale`` benchmark: fixed seed, mixed sizes,
realistic daily churn, built without walking the source again.

Layout: about 100 files a directory, 32 directories a group
(``g000/d0000/f0000000.txt``), plus a symlink every 1,000 files. Sizes are drawn
from four classes (most files small, a few large, a handful of several MiB):
about 30 KB a file on average, so 100,000 files hold about 3 GB; ``scale``
multiplies every size (0.1 gives about 300 MB for the same files). Contents:
``.txt`` files are word-like and compress well, ``.bin`` files are random.

Every day: 1% of the files get 256 bytes rewritten, 0.2% are added, 0.1%
deleted; every changed or added file's mtime is set to that day's noon plus a
drawn fraction of a second (real files have nanosecond mtimes, and cya records
them), so that two runs with one seed and one calendar write identical sources.
"""

from __future__ import annotations

import hashlib
import os
import random
from datetime import UTC, date, datetime
from pathlib import Path

FILES_PER_DIR = 100
DIRS_PER_GROUP = 32
_CLASSES = (  # (share of files, (low, high) bytes before scaling; uniform between)
    (0.70, (0, 4_000)),
    (0.25, (4_000, 44_000)),
    (0.045, (44_000, 356_000)),
    (0.005, (1_000_000, 4_600_000)),
)
_WORDS = [bytes(random.Random(7).choice(b"etaoinshrdlucmfwyp") for _ in range(n))
          for n in (2, 3, 4, 5, 6, 7, 8) for _ in range(40)]


def _noon(day: date) -> int:
    """Noon of ``day`` in nanoseconds since the epoch."""
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()) * 10**9


class ScaleSource:
    """``files`` files under ``root``; ``scale`` multiplies every file size."""

    def __init__(self, root: Path, seed: int, files: int, scale: float = 1.0,
                 day: date = date(2013, 1, 1)):
        self.root = root
        self.seed = seed
        self.scale = scale
        self.rng = random.Random(seed)
        self.live: list[int] = []  # file numbers that exist, in creation order
        self.gone: set[int] = set()
        self.next = 0
        self.bytes = 0
        self.links = 0
        self.hashes: dict[int, str] = {}  # SHA-256 of each live file
        self.symlinks: dict[str, str] = {}  # relative path -> target
        self._text = self._make_text()
        root.mkdir(parents=True, exist_ok=True)
        stamp = _noon(day)
        for _ in range(files):
            self._add(stamp)

    def describe(self) -> str:
        return (f"{len(self.live)} files, {self.bytes / 1e9:.2f} GB (size scale {self.scale:g}), "
                f"{self.links} symlinks, ~{FILES_PER_DIR} files a directory; daily churn 1% "
                f"changed, 0.2% added, 0.1% deleted; seed {self.seed}")

    def _make_text(self) -> bytes:
        rng = random.Random(self.seed + 1)
        words = [rng.choice(_WORDS) for _ in range(200_000)]
        return b" ".join(words)

    def path(self, number: int) -> Path:
        directory = number // FILES_PER_DIR
        suffix = "txt" if number % 5 < 3 else "bin"
        return (self.root / f"g{directory // DIRS_PER_GROUP:03d}" / f"d{directory:05d}"
                / f"f{number:07d}.{suffix}")

    def _size(self) -> int:
        pick = self.rng.random()
        for share, (low, high) in _CLASSES:
            if pick < share:
                return int(self.rng.uniform(low, high) * self.scale)
            pick -= share
        return 0

    def _content(self, number: int, size: int) -> bytes:
        if number % 5 < 3:  # text: a slice of the word stream
            text = self._text
            start = self.rng.randrange(len(text) // 2)
            data = text[start:start + size]
            while len(data) < size:
                data += text[:size - len(data)]
            return data
        return self.rng.randbytes(size)

    def _add(self, stamp: int) -> None:
        number = self.next
        self.next += 1
        path = self.path(number)
        if number % FILES_PER_DIR == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        size = self._size()
        content = self._content(number, size)
        path.write_bytes(content)
        self.hashes[number] = hashlib.sha256(content).hexdigest()
        self._touch(path, stamp)
        self.live.append(number)
        self.bytes += size
        if number % 1000 == 500:  # a symlink now and then, relative, to its neighbour
            link = path.with_name(f"l{number:07d}")
            os.symlink(path.name, link)
            self.symlinks[str(link.relative_to(self.root))] = path.name
            self.links += 1

    def churn(self, day: date) -> None:
        """One day of changes, all stamped ``day`` at noon."""
        stamp = _noon(day)
        count = len(self.live)
        for number in self.rng.sample(self.live, max(1, count // 100)):
            path = self.path(number)
            with open(path, "r+b") as handle:
                size = os.fstat(handle.fileno()).st_size
                at = self.rng.randrange(max(1, size))
                handle.seek(at)
                handle.write(self.rng.randbytes(256))
                self.bytes += max(0, at + 256 - size)
                handle.seek(0)
                self.hashes[number] = hashlib.file_digest(handle, "sha256").hexdigest()
            self._touch(path, stamp)
        doomed = set(self.rng.sample(self.live, max(1, count // 1000)))
        for number in doomed:
            path = self.path(number)
            self.bytes -= path.stat().st_size
            path.unlink()
        self.live = [n for n in self.live if n not in doomed]
        for number in doomed:
            del self.hashes[number]
        first = self.next
        for _ in range(max(1, count // 500)):
            self._add(stamp)
        # a directory's mtime changes with its entries: make that deterministic too
        for parent in sorted({self.path(n).parent for n in [*doomed, *range(first, self.next)]}):
            self._touch(parent, stamp)

    def digest(self) -> str:
        """What ``scale.tree_digest`` gives for the source as it is now, from memory."""
        found = [(str(self.path(n).relative_to(self.root)), self.hashes[n]) for n in self.live]
        found += [(link, "link:" + target) for link, target in self.symlinks.items()]
        return hashlib.sha256(repr(sorted(found)).encode()).hexdigest()

    def _touch(self, path: Path, stamp: int) -> None:
        """Set the mtime to ``stamp`` plus a fraction of a second, as real files have."""
        moment = stamp + self.rng.randrange(10**9)
        os.utime(path, ns=(moment, moment))
