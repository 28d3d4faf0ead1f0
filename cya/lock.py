"""One run per tree: an ``fcntl.flock`` on ``.cya/lock`` at the tree root.

The kernel drops the lock when the last process holding the descriptor dies,
so there is no stale lock to guess about. The holder writes its pid and start
time into the file so a second run can say who holds it. The descriptor is
handed to duplicity as well, so the tree stays locked until every process
that writes to it is gone.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cya.clock import wall_time
from cya.errors import Busy


class TreeLock:
    """Exclusive for writers (backup, trim); ``shared`` for restores, which only read
    but must not see a level trimmed away under them."""

    def __init__(self, path: Path, shared: bool = False):
        self.path = path
        self.shared = shared
        self.fd: int | None = None

    def __enter__(self) -> TreeLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise Busy(
                f"another cya run{holder} holds the lock on {self.path.parent.parent}",
                "try again later",
            ) from None
        self.fd = fd
        if self.shared:
            return self  # the file names the writer; readers leave it alone
        os.ftruncate(fd, 0)
        # The wall clock, not --now: this says when the holding process really started.
        since = wall_time()
        os.pwrite(fd, f"{os.getpid()} {since}\n".encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            if not self.shared:
                os.ftruncate(self.fd, 0)  # no stale pid for the next reader of the file
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


def _read_holder(fd: int) -> str:
    try:
        pid, since = os.pread(fd, 200, 0).decode().split()
    except (ValueError, UnicodeDecodeError, OSError):
        return ""
    return f" (pid {pid}, since {since})"


def lock_holder(path: Path) -> str | None:
    """Return "pid P since T" if some process holds the lock at ``path``, else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd).strip(" ()") or "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
