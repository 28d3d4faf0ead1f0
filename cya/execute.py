"""The only module that starts processes.

Argument tuples, never a shell. The command is logged at debug level with any
secret masked; secrets travel in the child's environment only. Output goes to
a temporary file (no pipe to deadlock on) and its last lines are kept for the
error message. SIGTERM and SIGHUP sent to cya are forwarded to the child, and
on Linux the child is killed if cya dies, so a killed run leaves no writer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cya.errors import CommandFailed

log = logging.getLogger("cya")
TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    tail: tuple[str, ...]  # the last lines the command printed (stdout and stderr)
    signalled: int | None = None  # the signal cya forwarded to the child, if any


def _die_with_parent(parent: int) -> None:
    if _libc is not None and hasattr(_libc, "prctl"):
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def masked(argv: Sequence[str], secrets: Sequence[str]) -> str:
    text = shlex.join(argv)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
) -> Completed:
    """Run ``argv`` to completion and return its exit status and output tail.

    ``env`` is added to cya's own environment. Raise CommandFailed if the
    program cannot be started.
    """
    log.debug("running: %s", masked(argv, secrets))
    child_env = dict(os.environ)
    child_env.update(env or {})
    parent = os.getpid()
    forwarded: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        process.send_signal(signum)

    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                list(argv),
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(pass_fds),
                cwd=cwd,
                preexec_fn=lambda: _die_with_parent(parent),
            )
        except OSError as error:
            raise CommandFailed(
                f"cannot start {argv[0]}: {error.strerror}",
                "reinstall cya so that its duplicity is installed beside it",
            ) from None
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            # The terminal sent SIGINT to the whole process group; let the child finish dying.
            process.wait()
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        output.seek(0)
        tail = _tail(output.read())
    log.debug("exit status %s", returncode)
    return Completed(tuple(argv), returncode, tail, forwarded[0] if forwarded else None)


def _tail(data: bytes) -> tuple[str, ...]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    return tuple(line for line in lines[-TAIL_LINES:])
