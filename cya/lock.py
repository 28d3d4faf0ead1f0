"""One writer per tree: an ``fcntl.flock`` on ``.cya/lock`` at the tree root.

Writers (backup, trim, archive) hold it exclusively; readers (restore, ls, find, ...)
hold it shared, so a trim cannot delete a level a restore is reading. The kernel drops
the lock when the last process holding the descriptor dies, so there is no stale lock
to guess about. Who holds it is read from ``/proc/locks`` (every holder, readers too);
the writer also writes its pid and start time into the file for the message a second
run prints. The descriptor is handed to duplicity as well, so the tree stays locked
until every process that writes to it is gone.

A lock file that cannot be created (a read-only copy of a tree) means nobody can
write the tree either: readers then go on without a lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cya.clock import wall_time
from cya.errors import Busy

RECORD_BYTES = 64  # the holder's "pid since" record, padded: rewritten in place, never grown

COMMANDS = ("backup", "trim", "archive", "restore", "ls", "find", "status", "timeline",
            "check", "recover", "init")


class TreeLock:
    """Exclusive for writers; ``shared`` for readers."""

    def __init__(self, path: Path, shared: bool = False):
        self.path = path
        self.shared = shared
        self.fd: int | None = None

    def __enter__(self) -> TreeLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            if not self.shared or error.errno not in (errno.EROFS, errno.EACCES):
                raise
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return self  # a read-only tree without a lock file: nobody writes it
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = lock_holders(self.path)
            os.close(fd)
            named = f" ({', '.join(str(h) for h in holders)})" if holders else ""
            raise Busy(
                f"another cya run{named} holds the lock on {self.path.parent.parent}",
                "try again later",
            ) from None
        self.fd = fd
        if not self.shared:
            # The wall clock, not --now: this says when the holding process really started.
            record = f"{os.getpid()} {wall_time()}".ljust(RECORD_BYTES - 1) + "\n"
            try:
                os.pwrite(fd, record.encode(), 0)
            except OSError:
                pass  # a full disk: the record only helps messages; /proc/locks names us
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


@dataclass(frozen=True)
class Holder:
    pid: int
    exclusive: bool
    command: str  # the cya command it runs, or the program's name

    def __str__(self) -> str:
        return f"{self.command} pid {self.pid}, {'exclusive' if self.exclusive else 'shared'}"


def lock_holders(path: Path) -> list[Holder]:
    """Every process holding the lock at ``path`` (from ``/proc/locks``), writers first."""
    try:
        info = os.stat(path)
        with open("/proc/locks") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    holders = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device \
                and fields[0] != "->":
            pid = int(fields[4])
            holders.append(Holder(pid, fields[3] == "WRITE", _command_of(pid)))
    return sorted(set(holders), key=lambda h: (not h.exclusive, h.pid))


def _command_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "a process"
    words = [a for a in argv[1:] if a in COMMANDS]
    if words:
        return f"cya {words[0]}"
    return Path(argv[0]).name if argv and argv[0] else "a process"
