"""Hooks: the user's own commands, run before and after a backup or restore.

``[hooks]`` in the config holds, for each kind in ``config.HOOK_KINDS``, a list of
argument lists. Each is run as written — a program and its arguments, no shell, so
spaces, quotes and ``$`` reach the program verbatim; a user who wants a shell writes
``["sh", "-c", "..."]``. The commands of one kind run in order; the first that fails
stops that kind (the later ones do not run) and ``run_hooks`` raises ``HookFailed``.

Every command runs through ``execute.run`` within ``hooks.timeout``; on expiry its
whole process group (grandchildren included) is stopped. Its standard input is
``/dev/null``; its output goes to cya's log at info level, one log line per output line,
prefixed with the hook kind. Its environment is cya's, plus:

========================  =========================================================
``CYA_HOOK``              the kind: ``before_backup``, ``after_backup``, ``on_error``,
                          ``before_restore``, ``after_restore``
``CYA_CONFIG``            the config file
``CYA_TREE``              the tree
``CYA_LEAF``              the leaf the backup goes to (``2000/2010/2012/2012-12/2012-12-02``),
                          or the level a restore reads; empty when not known yet
``CYA_BACKUP_TIME``       the backup's time, ISO 8601 with offset; empty when not known
``CYA_STATUS``            ``ok``, ``failed``, or ``partial`` (the backup is kept but a
                          later step — trim, archive, unreadable files — failed)
``CYA_ERROR``             what went wrong, one line; empty when the status is ``ok``
``CYA_RESTORE_TARGET``    the restore's target directory (restore hooks only)
========================  =========================================================

What each kind means to a run is the caller's business (``actions/backup.py`` and
``actions/restore.py``): a failing ``before_backup`` stops the run before anything is
written; ``after_backup`` runs after every backup that was kept, told its status;
``on_error`` runs on any failure, and a failure of ``on_error`` itself is reported but
never replaces the error that caused it.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cya import execute
from cya.config import HOOK_KINDS, Hooks
from cya.errors import CommandFailed, HookFailed, Interrupted

log = logging.getLogger("cya")
STATUSES = ("ok", "failed", "partial")
MESSAGE_LINES = 3  # output lines quoted in the error's one line; the detail has more


@dataclass(frozen=True)
class HookContext:
    """What the hooks are told about the run."""

    tree: Path
    config: Path
    leaf: str = ""
    backup_time: datetime | None = None  # aware
    status: str = "ok"
    error: str = ""
    restore_target: Path | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"hook status must be one of {', '.join(STATUSES)}")
        if self.backup_time is not None and self.backup_time.tzinfo is None:
            raise ValueError("the backup time given to hooks must be aware")

    def environment(self, kind: str) -> dict[str, str]:
        env = {
            "CYA_HOOK": kind,
            "CYA_CONFIG": str(self.config),
            "CYA_TREE": str(self.tree),
            "CYA_LEAF": self.leaf,
            "CYA_BACKUP_TIME": self.backup_time.isoformat() if self.backup_time else "",
            "CYA_STATUS": self.status,
            "CYA_ERROR": " ".join(self.error.split()),
        }
        if self.restore_target is not None:
            env["CYA_RESTORE_TARGET"] = str(self.restore_target)
        return env


def run_hooks(kind: str, hooks: Hooks, context: HookContext) -> None:
    """Run the commands of hook ``kind`` in order.

    Raise HookFailed (exit 1) for the first that exits non-zero, times out or cannot be
    started, naming its program, its exit status or "timed out after …", and the last
    lines of its output; the commands after it do not run. Raise Interrupted when cya
    was asked to stop (Ctrl-C, SIGTERM) while a hook ran.
    """
    if kind not in HOOK_KINDS:
        raise ValueError(f"unknown hook kind {kind!r}")
    env = context.environment(kind)
    for command in hooks.commands(kind):
        _run_one(kind, command, env, hooks.timeout)


def _run_one(kind: str, command: tuple[str, ...], env: dict[str, str], timeout: float) -> None:
    program = command[0]
    log.info("%s: running %s", kind, shlex.join(command))
    try:
        done = execute.run(command, env=env, timeout=timeout, report_signal=True,
                           on_line=lambda line: log.info("%s: %s", kind, line))
    except CommandFailed as error:
        raise HookFailed(f"{kind} hook {program} could not be started: {error.message}",
                         f"fix hooks.{kind} in the config (is {program} installed, "
                         "and on cya's PATH?)") from None
    if done.ok:
        return
    if done.signalled is not None:
        raise Interrupted(f"{kind} hook {program} interrupted by signal {done.signalled}",
                          "it was stopped with every process it started")
    if done.stopped is not None:
        why = done.stopped
    elif done.returncode < 0:
        why = f"was killed by signal {-done.returncode}"
    else:
        why = f"failed with exit status {done.returncode}"
    said = [line.strip() for line in done.tail if line.strip()][-MESSAGE_LINES:]
    message = f"{kind} hook {program} {why}"
    if said:
        message += ": " + " | ".join(said)
    hint = (f"raise hooks.timeout (now {_duration(timeout)}) or make the hook faster"
            if done.stopped is not None else "see its output in cya's log (-v)")
    raise HookFailed(message, hint, "\n".join(done.tail))


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
