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
def test_a_signal_to_cya_ends_the_childs_whole_group_and_is_raised(tmp_path, signum, raised):
    """A caller that does not ask for the signal cannot swallow it: a Ctrl-C while
    gpgconf or sshfs runs stops the command, it does not go on to the next step. A
    child that ignores the signal is killed, with its group, after the grace period."""
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


def test_a_caller_that_asks_is_told_of_the_signal_instead(tmp_path):
    pids = tmp_path / "pids"
    # what this process does with SIGINT now: Python's handler, or SIG_IGN when the run
    # was started in the background by a shell without job control
    before = signal.getsignal(signal.SIGINT)
    sender = signal_once_started(pids, signal.SIGINT)
    done = execute.run([PYTHON, "-c", STUBBORN, str(pids)], report_signal=True)
    sender.join()
    assert done.signalled == signal.SIGINT and not done.ok
    assert done.returncode == -signal.SIGKILL  # it ignored SIGINT and was killed
    assert not any(alive(int(pid)) for pid in pids.read_text().split())
    # the handler from before the run is back: the signal was not left pending
    assert signal.getsignal(signal.SIGINT) is before
