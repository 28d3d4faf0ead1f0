"""Typed errors: each carries what went wrong, what to do, and the exit code.

cli.py is the one place a CyaError becomes a message and an exit code
(DESIGN.md section 3: 0 done, 1 failed, 2 bad usage or config, 75 try again later).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75


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
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(CyaError):
    exit_code = EXIT_USAGE


class ConfigError(CyaError):
    exit_code = EXIT_USAGE


class TimeWentBackwards(UsageError):
    """A backup time not after the newest backup already in the tree."""


class Busy(CyaError):
    exit_code = EXIT_TEMPFAIL


class CommandFailed(CyaError):
    """An external command (duplicity) failed; the message says what it means."""


class TreeError(CyaError):
    """The tree on disk is not in a state cya can work with."""


class ArchiveError(CyaError):
    """The bucket could not be reached, refused a request, or holds something unexpected."""


class ThawPending(CyaError):
    """Archived bags are still being thawed; the same command finishes the job later."""

    exit_code = EXIT_TEMPFAIL


class MetadataError(CyaError):
    """Recorded metadata that cannot be read, or (when asked to be strict) re-applied."""
