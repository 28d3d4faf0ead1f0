"""Typed errors: each carries what went wrong, what to do, and the exit code.

cli.py is the one place a CyaError (or anything unexpected) becomes a message and
an exit code (DESIGN.md section 3: 0 done, 1 failed, 2 bad usage or config,
75 try again later).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterable

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop like Ctrl-C, cleaning up (``signum`` says which)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def by_signal(error: KeyboardInterrupt) -> str:
    """`` by signal N`` for a SIGTERM or SIGHUP, nothing for Ctrl-C: the words that
    follow "interrupted" in a message."""
    return f" by signal {error.signum}" if isinstance(error, Stopped) else ""


def stopped_by(signum: int) -> KeyboardInterrupt:
    """The exception a signal cya was sent becomes: Ctrl-C's own for SIGINT."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def handled(signals: Iterable[int]) -> list[int]:
    """The ``signals`` cya may catch: all but those it was started with ignored.

    ``nohup`` ignores SIGHUP and a shell ignores SIGINT in what it starts with ``&``, so
    that closing the terminal or a Ctrl-C meant for the foreground leaves the job
    running; catching such a signal (and forwarding it to duplicity) would stop the
    backup the user asked to survive it. Ignored stays ignored, as in every Unix tool.
    """
    return [sig for sig in signals if signal.getsignal(sig) is not signal.SIG_IGN]


class CyaError(Exception):
    """An error the user can act on. ``hint`` says what to do."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str = "", detail: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Extra lines (such as the tail of duplicity's output) shown with -v.
        self.detail = detail

    def one_line(self) -> str:
        text = f"{self.message}; {self.hint}" if self.hint else self.message
        return " ".join(text.split("\n"))


class UsageError(CyaError):
    exit_code = EXIT_USAGE


class ConfigError(CyaError):
    exit_code = EXIT_USAGE


class TimeWentBackwards(UsageError):
    """A backup time not after the newest backup already in the tree."""


class Busy(CyaError):
    exit_code = EXIT_TEMPFAIL


class CommandFailed(CyaError):
    """An external command (duplicity, a hook) failed; the message says what it means."""


class Interrupted(CyaError):
    """cya was asked to stop (Ctrl-C, SIGTERM); the message says what was undone."""


class HookFailed(CommandFailed):
    """A hook command exited non-zero, timed out, or could not be started."""


class RemoteUnavailable(CyaError):
    """A ``user@host:/path`` source could not be mounted; the message names the host."""


class TreeError(CyaError):
    """The tree on disk is not in a state cya can work with."""


class CatalogError(TreeError):
    """The catalog is missing or damaged; ``cya init --adopt`` rebuilds it from the tree."""


class ArchiveError(CyaError):
    """The bucket could not be reached, refused a request, or holds something unexpected."""


class ThawPending(CyaError):
    """Archived bags are still being thawed; the same command finishes the job later."""

    exit_code = EXIT_TEMPFAIL


def mount_point(path: str | os.PathLike) -> str:
    """The mount point of the file system ``path`` (or its nearest existing parent) is on."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        current = os.path.dirname(current)
    while not os.path.ismount(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def from_os_error(error: OSError, doing: str, hint: str = "") -> CyaError:
    """One line for an OSError met while ``doing`` something ("write the tree", ...):
    a full disk says so and names the file system."""
    where = error.filename or ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        system = mount_point(where) if where else "?"
        what = "disk full" if error.errno == errno.ENOSPC else "disk quota exceeded"
        return CyaError(f"{what}: no space left on the file system at {system} while trying "
                        f"to {doing}" + (f" ({where})" if where else ""),
                        hint or "free some space there and run again; no earlier backup "
                        "was touched")
    if error.errno == errno.EROFS:
        return CyaError(f"read-only file system: cannot {doing}" + (f" ({where})" if where
                                                                     else ""),
                        hint or "remount it read-write, or use a command that only reads")
    reason = error.strerror or str(error)
    return CyaError(f"cannot {doing}" + (f" ({where})" if where else "") + f": {reason}",
                    hint)


class MetadataError(CyaError):
    """Recorded metadata that cannot be read, or (when asked to be strict) re-applied."""
