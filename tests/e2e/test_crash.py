"""Crash safety: a real process killed (os._exit at a named point, or SIGKILL at a random
instant inside duplicity), then a rerun. Every level must pass plain duplicity's
collection-status, no completed backup is lost, and the crashed backup is in every level
it belongs to or in none."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cya.core.names import complete_backup_times, format_time
from tests.helpers import (
    CYA,
    Workspace,
    change_source,
    clone,
    duplicity_children,
    restored_source,
    snapshot,
    with_backups,
)

MONTH = "2000/2010/2012/2012-12"
OLD_WEEK = f"{MONTH}/2012-12-02"
NEW_WEEK = f"{MONTH}/2012-12-09"
CRASHED = "20121209T120000Z"
RERUN = "20121209T130000Z"

# Where the run dies -> whether its backup survives (completed by the rerun) or not (undone)
CRASH_POINTS = {
    "after-journal": False,
    "after-seed": False,
    "after-capture": True,
    "before-new-levels": True,
    "after-new-levels": True,
    "before-base-manifest": True,
    "after-publish": True,
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two completed backups in week 2012-12-02; the next backup starts a new week."""
    ws, _ = with_backups(tmp_path_factory.mktemp("made"), ["2012-12-04", "2012-12-05"])
    change_source(ws.source, 2)
    return ws


def backups_in(ws: Workspace, level: str) -> list[str]:
    """Backup times (duplicity stamps) of the complete sets in a level's chain."""
    return [format_time(t) for t in complete_backup_times(os.listdir(ws.tree / level / "files"))]


def assert_converged(ws: Workspace, crashed_survives: bool, tmp_path: Path) -> None:
    for files in ws.files_dirs():
        out = ws.duplicity("collection-status", f"file://{files}").stdout
        assert "No orphaned or incomplete backup sets found" in out, (files, out)
    new_week_first = CRASHED if crashed_survives else RERUN
    # completed backups are all still there
    assert backups_in(ws, OLD_WEEK) == ["20121204T120000Z", "20121205T120000Z"]
    # the month chain holds the new week's first backup exactly once
    assert backups_in(ws, MONTH) == ["20121204T120000Z", new_week_first]
    expected_week = ["20121204T120000Z", CRASHED, RERUN] if crashed_survives else [
        "20121204T120000Z", RERUN]
    assert backups_in(ws, NEW_WEEK) == expected_week
    for level in ("2000", "2000/2010", "2000/2010/2012"):
        assert backups_in(ws, level) == ["20121204T120000Z"]
    assert list((ws.tree / ".cya" / "staging").iterdir()) == []
    assert not (ws.tree / ".cya" / "journal.json").exists()
    # and the newest backup restores the source exactly, with plain duplicity
    target = tmp_path / "restored"
    ws.duplicity("restore", f"file://{ws.tree / NEW_WEEK / 'files'}", str(target))
    assert snapshot(restored_source(target, ws.source)) == snapshot(ws.source)


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_kill_at_each_named_point_then_rerun(made, tmp_path, point):
    ws = clone(made, tmp_path / "ws")
    died = ws.cya("--now", "2012-12-09T12:00", "backup", check=False,
                  env={"CYA_CRASH_AT": point})
    assert died.returncode == 137, (point, died.stderr)
    rerun = ws.backup("2012-12-09T13:00")
    survives = CRASH_POINTS[point]
    assert ("was completed" if survives else "was undone") in rerun.stdout
    assert_converged(ws, survives, tmp_path)


def test_kill_at_a_random_instant_inside_duplicity(made, tmp_path):
    rng = random.Random(os.environ.get("CYA_TEST_SEED", "2012"))
    ws = clone(made, tmp_path / "ws")
    cya = subprocess.Popen([CYA, "--now", "2012-12-09T12:00", "backup"], env=ws.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writers = duplicity_children(cya.pid, poll=0.005)
    assert writers, "duplicity never started"
    time.sleep(rng.uniform(0.05, 0.6))
    os.kill(cya.pid, signal.SIGKILL)
    cya.wait()
    # duplicity dies with cya: no writer is left behind
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{c}").exists() and "zombie" not in _state(c) for c in writers):
        assert time.monotonic() < deadline, "duplicity outlived cya"
        time.sleep(0.05)
    survived = (ws.tree / ".cya" / "journal.json").exists() and \
        '"captured"' in (ws.tree / ".cya" / "journal.json").read_text()
    ws.backup("2012-12-09T13:00")
    assert_converged(ws, survived, tmp_path)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"
