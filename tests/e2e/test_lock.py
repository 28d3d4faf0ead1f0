"""One run per tree, and the passphrase never on a command line."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.helpers import CYA, Workspace, assert_one_line_error, duplicity_children


def _all_cmdlines() -> list[bytes]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes())
            except OSError:
                pass
    return lines


def test_second_run_exits_75_at_once_and_no_passphrase_in_argv(tmp_path):
    ws = Workspace(tmp_path)
    ws.init()
    # enough incompressible data that the first backup runs for a few seconds
    for number in range(4):
        (ws.source / f"random-{number}.bin").write_bytes(os.urandom(40 * 2**20))
    secret = ws.passphrase().encode()
    first = subprocess.Popen([CYA, "--now", "2012-12-04T12:00", "backup"], env=ws.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert duplicity_children(first.pid), "duplicity never started"
    for _ in range(5):
        assert not any(secret in line for line in _all_cmdlines())
        time.sleep(0.05)
    started = time.monotonic()
    second = ws.backup("2012-12-05T12:00", check=False)
    elapsed = time.monotonic() - started
    assert first.poll() is None, "the first run ended before the second was tried"
    assert_one_line_error(second, 75, f"pid {first.pid}", "try again later")
    assert elapsed < 2.0
    assert first.wait(timeout=300) == 0, first.communicate()
    assert len(ws.manifests("2000/2010/2012/2012-12/2012-12-02")) == 1
    # the lock is free again
    ws.backup("2012-12-05T12:00")


def test_sigterm_reaches_duplicity_and_the_run_is_undone(tmp_path):
    ws = Workspace(tmp_path)
    ws.init()
    for number in range(4):
        (ws.source / f"random-{number}.bin").write_bytes(os.urandom(40 * 2**20))
    run = subprocess.Popen([CYA, "--now", "2012-12-04T12:00", "backup"], env=ws.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers = duplicity_children(run.pid)
    assert writers
    time.sleep(0.5)
    run.terminate()
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    assert "interrupted by signal 15" in err and "Traceback" not in err
    assert not any(Path(f"/proc/{pid}").exists() for pid in writers)
    assert list((ws.tree / ".cya" / "staging").iterdir()) == []
    assert not (ws.tree / ".cya" / "journal.json").exists()
    assert ws.files_dirs() == []
