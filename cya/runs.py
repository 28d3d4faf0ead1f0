"""What a run makes outside the tree, so that the next cya command cleans what a dead run
left: restore staging beside a target, decrypted work directories in the cache, private
gpg homes and their agents.

Each cya process that makes such a thing writes a small record under
``~/.cache/cya/runs/`` and holds an ``fcntl.flock`` on it for its whole life; it lists
every path before the path is created. The kernel drops the lock when the process dies
(``kill -9`` included), so ``sweep`` — run at the start of every command — can tell a
dead run's record (lockable) from a live one's (locked) without guessing from pids, and
removes what the dead run listed. A run that ends normally removes its own paths and its
record.

Invariants: a path is listed before it exists; a live run's paths are never touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import platformdirs

from cya.fsutil import remove_tree

log = logging.getLogger("cya")

GNUPG_MARK = "gnupg:"  # a listed gpg home: its agent is stopped before it is removed


def cache_base() -> Path:
    """``~/.cache/cya`` (0700): duplicity's caches, work directories, run records."""
    base = Path(platformdirs.user_cache_dir("cya"))
    if not base.is_dir():
        base.mkdir(parents=True, mode=0o700)
    elif base.stat().st_mode & 0o077 and base.stat().st_uid == os.getuid():
        os.chmod(base, 0o700)  # cya's own directory, made 0755 by an older version
    return base


class Run:
    """This process's record of the paths it makes outside the tree."""

    _current: Run | None = None

    def __init__(self) -> None:
        directory = cache_base() / "runs"
        directory.mkdir(mode=0o700, exist_ok=True)
        self.path = directory / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.paths: list[str] = []

    @classmethod
    def current(cls) -> Run:
        """The run record of this process (made on first use)."""
        if cls._current is None:
            cls._current = Run()
        return cls._current

    def own(self, path: Path, gnupg: bool = False) -> Path:
        """List ``path`` as this run's (call before creating it); return it."""
        self.paths.append((GNUPG_MARK if gnupg else "") + str(path))
        self._write()
        return path

    def disown(self, path: Path) -> None:
        """``path`` is gone or now belongs elsewhere: forget it."""
        self.paths = [p for p in self.paths if p.removeprefix(GNUPG_MARK) != str(path)]
        self._write()

    def _write(self) -> None:
        data = "".join(f"{p}\0" for p in self.paths).encode("utf-8", "surrogateescape")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def close(self) -> None:
        """Remove what is still listed (nothing, when every step cleaned up after itself)
        and the record."""
        _remove_listed(self.paths)
        os.unlink(self.path)
        os.close(self.fd)
        Run._current = None


def _remove_listed(paths: list[str], stop_agent: Callable[[Path], None] | None = None) -> None:
    for entry in reversed(paths):
        path = Path(entry.removeprefix(GNUPG_MARK))
        try:
            if entry.startswith(GNUPG_MARK) and stop_agent is not None:
                stop_agent(path)
            remove_tree(path)
        except OSError as error:
            log.warning("could not remove %s: %s", path, error.strerror or error)


def sweep(stop_agent: Callable[[Path], None] | None = None) -> int:
    """Remove what dead runs left; return how many dead runs there were."""
    directory = Path(platformdirs.user_cache_dir("cya")) / "runs"
    try:
        records = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    swept = 0
    for record in records:
        if Run._current is not None and record == Run._current.path:
            continue
        try:
            fd = os.open(record, os.O_RDWR)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run
            data = os.pread(fd, 1 << 20, 0).decode("utf-8", "surrogateescape")
            listed = [p for p in data.split("\0") if p]
            if listed:
                log.info("removing what an interrupted cya run left: %s", ", ".join(
                    p.removeprefix(GNUPG_MARK) for p in listed))
            _remove_listed(listed, stop_agent)
            record.unlink(missing_ok=True)
            swept += 1
        finally:
            os.close(fd)
    return swept
