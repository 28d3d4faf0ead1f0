"""execute.run with real processes: status and output, process groups, and what a
signal sent to cya does to the child it is waiting on."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from cya import execute
from cya.errors import Stopped

PYTHON = sys.executable
# a child that ignores SIGINT and SIGTERM and starts a grandchild in its group that
# does too; each writes its pid to the file named by argv[1], then sleeps
STUBBORN = """
import os, signal, subprocess, sys, time
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time\\n"
    "for s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_IGN)\\n"
    "time.sleep(120)"])
with open(sys.argv[1], "w") as out:
    out.write(f"{os.getpid()} {child.pid}")
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def signal_once_started(pids: Path, signum: int) -> threading.Thread:
    """Send ``signum`` to this process once the stubborn child has written its pids."""
    def send() -> None:
        deadline = time.monotonic() + 30
        while not (pids.exists() and len(pids.read_text().split()) == 2):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def handlers():
    """``handlers(SIGINT=h, ...)`` sets this process's handlers for the test; each is
    put back afterwards (the suite may have been started with SIGINT ignored)."""
    saved: dict[int, object] = {}

    def set_them(**wanted: object) -> None:
        for name, handler in wanted.items():
            sig = getattr(signal, name)
            saved.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, handler)

    yield set_them
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_execute_run_gives_status_and_tail_and_a_timed_child_leads_its_own_group():
    done = execute.run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert done.returncode == 4 and done.tail == ("out", "err")
    assert done.stopped is None and done.signalled is None
    done = execute.run([PYTHON, "-c", "import os; print(os.getpgrp(), os.getpid())"],
                       timeout=10)
    group, pid = done.tail[0].split()
    assert group == pid and done.stopped is None


@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt),
                                                (signal.SIGTERM, Stopped)])
def test_a_signal_to_cya_ends_the_childs_whole_group_and_is_raised(tmp_path, handlers, signum,
                                                                   raised):
    """A caller that does not ask for the signal cannot swallow it: a Ctrl-C while
    gpgconf or sshfs runs stops the command, it does not go on to the next step. A
    child that ignores the signal is killed, with its group, after the grace period."""
    handlers(SIGINT=signal.default_int_handler)  # as Python sets it up from a terminal
    pids = tmp_path / "pids"
    sender = signal_once_started(pids, signum)
    started = time.monotonic()
    with pytest.raises(raised) as caught:
        execute.run([PYTHON, "-c", STUBBORN, str(pids)])
    took = time.monotonic() - started
    sender.join()
    assert type(caught.value) is raised
    if raised is Stopped:
        assert caught.value.signum == signum
    assert took < execute.GRACE_SECONDS + 10, took
    child, grandchild = (int(pid) for pid in pids.read_text().split())
    assert not alive(child) and not alive(grandchild)


def test_a_caller_that_asks_is_told_of_the_signal_instead(tmp_path, handlers):
    pids = tmp_path / "pids"
    handlers(SIGINT=signal.default_int_handler)
    before = signal.getsignal(signal.SIGINT)
    sender = signal_once_started(pids, signal.SIGINT)
    done = execute.run([PYTHON, "-c", STUBBORN, str(pids)], report_signal=True)
    sender.join()
    assert done.signalled == signal.SIGINT and not done.ok
    assert done.returncode == -signal.SIGKILL  # it ignored SIGINT and was killed
    assert not any(alive(int(pid)) for pid in pids.read_text().split())
    # the handler from before the run is back: the signal was not left pending
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_cya_was_started_with_ignored_stays_ignored_while_a_child_runs(tmp_path,
                                                                               handlers):
    """As ``nohup`` (SIGHUP) and a shell's ``&`` (SIGINT) leave them: such a signal sent
    to cya is neither caught nor forwarded, the child runs to its end."""
    handlers(SIGINT=signal.SIG_IGN, SIGHUP=signal.SIG_IGN)
    pids = tmp_path / "pids"
    child = ("import os, sys, time\n"
             "open(sys.argv[1], 'w').write(f'{os.getpid()} {os.getpid()}')\n"
             "time.sleep(1.5)\nprint('finished')\n")
    senders = [signal_once_started(pids, signum) for signum in (signal.SIGHUP, signal.SIGINT)]
    done = execute.run([PYTHON, "-c", child, str(pids)], report_signal=True)
    for sender in senders:
        sender.join()
    assert done.ok and done.signalled is None and done.tail == ("finished",)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
