"""The only module that starts processes.

Argument tuples, never a shell. The command is logged at debug level with any
secret masked; secrets travel in the child's environment only. Output goes to
a temporary file (no pipe to deadlock on) and its last lines are kept for the
error message.

Every child runs in a process group of its own, and nothing cya waits on can hang
it forever:

* SIGINT (Ctrl-C), SIGTERM and SIGHUP sent to cya are forwarded to the child's
  whole group (duplicity and the gpg processes it started); a group still there
  ``GRACE_SECONDS`` later is killed. Then ``run`` raises what the signal means
  (KeyboardInterrupt, errors.Stopped), so no caller can swallow a Ctrl-C and go on —
  except one that asks with ``report_signal`` (duplicity, hooks), which gets
  ``Completed.signalled``, undoes its step and says what it undid. A signal cya was
  started with ignored (as ``nohup`` and ``&`` leave SIGHUP and SIGINT) stays ignored;
* on Linux the child is killed if cya dies, so a killed run leaves no writer;
* ``timeout`` bounds the run; ``stall_after`` ends a run whose process group used no
  CPU and did no I/O for that long (a deadlock between duplicity and gpg, for one);
  either way the group is stopped and ``Completed.stopped`` says why.
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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cya.errors import CommandFailed, handled, stopped_by

log = logging.getLogger("cya")
TAIL_LINES = 30
POLL_SECONDS = 0.2
GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL when cya stops a child
_PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

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
    stopped: str | None = None  # why cya stopped it: "timed out after …", "stalled for …"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.signalled is None and self.stopped is None


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


def group_activity(group: int) -> int | None:
    """CPU ticks plus bytes read and written by every process in a process group, or
    None when the group has no process left (a zombie, which only waits to be reaped,
    does not count: a stopped child is a zombie until ``run`` waits for it)."""
    total = 0
    found = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            # state is the 3rd field, pgrp the 5th: 1st and 3rd after the name
            if int(fields[2]) != group or fields[0] == b"Z":
                continue
            found = True
            total += int(fields[11]) + int(fields[12])  # utime + stime
            with open(f"/proc/{entry.name}/io", "rb") as handle:
                for line in handle:
                    if line.startswith((b"rchar:", b"wchar:")):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total if found else None


def signal_group(group: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when no process of it is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def stop_group(group: int) -> None:
    """SIGTERM a process group, then SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, 0.0)):
        if not signal_group(group, sig):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if group_activity(group) is None:
                return
            time.sleep(0.1)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    remove_env: Sequence[str] = (),
    secrets: Sequence[str] = (),
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
    timeout: float | None = None,
    stall_after: float | None = None,
    on_line: Callable[[str], None] | None = None,
    on_poll: Callable[[], None] | None = None,
    report_signal: bool = False,
) -> Completed:
    """Run ``argv`` to completion and return its exit status and output tail.

    ``env`` is added to cya's own environment, ``remove_env`` taken out of it.
    ``on_line`` is called with each new line of output while the child runs, ``on_poll``
    every few tenths of a second (progress on a terminal).
    Raise CommandFailed if the program cannot be started, and KeyboardInterrupt or
    errors.Stopped when cya was sent a signal while the child ran (unless
    ``report_signal``: then ``Completed.signalled`` says which).
    """
    log.debug("running: %s", masked(argv, secrets))
    child_env = {k: v for k, v in os.environ.items() if k not in remove_env}
    child_env.update(env or {})
    parent = os.getpid()
    forwarded: list[int] = []
    forwarded_at = [0.0]
    stopped: str | None = None

    def forward(signum: int, _frame: object) -> None:
        if not forwarded:
            forwarded_at[0] = time.monotonic()
        forwarded.append(signum)
        signal_group(process.pid, signum)

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
                start_new_session=True,
                preexec_fn=lambda: _die_with_parent(parent),
            )
        except OSError as error:
            raise CommandFailed(
                f"cannot start {argv[0]}: {error.strerror}",
                "check that it is installed (cya's duplicity is installed beside it)",
            ) from None
        previous = {sig: signal.signal(sig, forward) for sig in handled(FORWARDED)}
        started = time.monotonic()
        activity, active_at = None, started
        read_to = 0
        try:
            while True:
                try:
                    returncode = process.wait(POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if on_line is not None:
                    read_to = _new_lines(output, read_to, on_line)
                if on_poll is not None:
                    on_poll()
                if forwarded and now - forwarded_at[0] > GRACE_SECONDS:
                    signal_group(process.pid, signal.SIGKILL)  # asked to stop, it did not
                elif timeout is not None and now - started > timeout:
                    stopped = f"timed out after {_seconds(timeout)}"
                elif stall_after is not None and now - active_at > min(stall_after, 5.0):
                    current = group_activity(process.pid)
                    if current != activity:
                        activity, active_at = current, now
                    elif now - active_at > stall_after:
                        stopped = f"made no progress for {_seconds(stall_after)}"
                if stopped:
                    stop_group(process.pid)
                    returncode = process.wait()
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if forwarded or stopped:
            stop_group(process.pid)  # what the child left running in its group
        if on_line is not None:
            _new_lines(output, read_to, on_line)
        output.seek(0)
        tail = _tail(output.read())
    log.debug("exit status %s%s", returncode, f" ({stopped})" if stopped else "")
    if forwarded and not report_signal:
        raise stopped_by(forwarded[0])
    return Completed(tuple(argv), returncode, tail, forwarded[0] if forwarded else None,
                     stopped)


def _new_lines(output, start: int, on_line: Callable[[str], None]) -> int:
    """Hand every complete line written after ``start`` to ``on_line``; return the new
    start."""
    data = os.pread(output.fileno(), 1 << 20, start)
    end = data.rfind(b"\n") + 1
    for line in data[:end].decode("utf-8", "replace").splitlines():
        on_line(line)
    return start + end


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _tail(data: bytes) -> tuple[str, ...]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    return tuple(line for line in lines[-TAIL_LINES:])
