"""The trimmer with real duplicity: bounded levels, protected current leaf, exact byte
counts, per-kind keep counts, and a trim killed halfway finished by the next run."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, timedelta

import pytest

from tests.helpers import (
    Workspace,
    change_source,
    clone,
    restored_source,
    snapshot,
    tree_state,
)

SUNDAYS = [date(2012, 12, 2) + timedelta(weeks=i) for i in range(19)]  # .. 2013-04-07
ISSUE_DAYS = SUNDAYS + [date(2013, 4, 9), date(2013, 4, 10), date(2014, 1, 5),
                        date(2014, 2, 2), date(2015, 1, 4), date(2015, 1, 6)]
CURRENT_LEAF = "2000/2010/2015/2015-01/2015-01-04"


def level_dirs(ws: Workspace) -> list[str]:
    return sorted(str(p.parent.relative_to(ws.tree)) for p in ws.files_dirs())


def children_of(ws: Workspace) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for level in level_dirs(ws):
        parent = level.rsplit("/", 1)[0] if "/" in level else ""
        found.setdefault(parent, []).append(level)
    return found


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("trimmed"))
    ws.init()
    outputs = []
    for number, day in enumerate(ISSUE_DAYS):
        change_source(ws.source, number)
        outputs.append(ws.backup(f"{day}T12:00").stdout)
    return ws, outputs


def test_every_level_keeps_at_most_two_children(trimmed):
    ws, _ = trimmed
    for parent, kids in children_of(ws).items():
        if parent:  # centuries are not trimmed
            assert len(kids) <= 2, (parent, kids)
    assert children_of(ws)["2000/2010"] == ["2000/2010/2014", "2000/2010/2015"]
    assert not (ws.tree / "2000/2010/2013").exists()
    assert not (ws.tree / "2000/2010/2012").exists()
    assert (ws.tree / CURRENT_LEAF / "files").is_dir()
    # months and weeks that remain: the newest two of each
    assert children_of(ws)["2000/2010/2014"] == ["2000/2010/2014/2014-01",
                                                "2000/2010/2014/2014-02"]
    assert children_of(ws)["2000/2010/2015/2015-01"] == [CURRENT_LEAF]


def test_backups_say_what_they_trimmed(trimmed):
    _ws, outputs = trimmed
    joined = "\n".join(outputs)
    assert "deleted 2000/2010/2012: older than the 2 newest years in 2000/2010" in joined
    assert "deleted 2000/2010/2013: older than the 2 newest years in 2000/2010" in joined
    assert "freed " in joined


def test_remaining_chains_are_clean_and_the_newest_backup_restores(trimmed, tmp_path):
    ws, _ = trimmed
    for files in ws.files_dirs():
        out = ws.duplicity("collection-status", f"file://{files}").stdout
        assert "No orphaned or incomplete backup sets found" in out, (files, out)
    target = tmp_path / "restored"
    ws.duplicity("restore", f"file://{ws.tree / CURRENT_LEAF / 'files'}", str(target))
    assert snapshot(restored_source(target, ws.source)) == snapshot(ws.source)
    assert list((ws.tree / ".cya" / "trash").iterdir()) == []


def test_nothing_left_to_trim(trimmed):
    ws, _ = trimmed
    result = ws.cya("--now", "2015-01-07T12:00", "trim", "--json")
    plan = json.loads(result.stdout)
    assert plan["delete"] == [] and plan["bytes_freed"] == 0
    kept = {entry["level"]: entry["reason"] for entry in plan["keep"]}
    assert kept[CURRENT_LEAF] == "the current leaf or its ancestor"


MARCH = [date(2013, 3, 3) + timedelta(weeks=i) for i in range(5)]  # five Sundays
MARCH_DAYS = [date(2013, 2, 24)] + MARCH + [date(2013, 3, 31) + timedelta(days=1)]


@pytest.fixture(scope="module")
def untrimmed(tmp_path_factory):
    """Six weeks of backups made with --no-trim: one in February, five in March."""
    ws = Workspace(tmp_path_factory.mktemp("untrimmed"))
    ws.init()
    for number, day in enumerate(MARCH_DAYS):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00", "--no-trim")
    return ws


def du(path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", "--exclude=.cya", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def test_dry_run_changes_nothing_and_predicts_the_du_drop(untrimmed, tmp_path):
    ws = clone(untrimmed, tmp_path / "ws")
    before_state, before_du = tree_state(ws.tree), du(ws.tree)
    dry = json.loads(ws.cya("--now", "2013-04-01T13:00", "trim", "--dry-run", "--json").stdout)
    assert tree_state(ws.tree) == before_state
    # 2013-04-01 is a Monday: its week (and so its month) starts on Sunday 2013-03-31
    assert [d["level"] for d in dry["delete"]] == [
        "2000/2010/2013/2013-03/2013-03-03",
        "2000/2010/2013/2013-03/2013-03-10",
        "2000/2010/2013/2013-03/2013-03-17",
    ]
    assert dry["bytes_freed"] > 0
    text = ws.cya("--now", "2013-04-01T13:00", "trim").stdout
    assert ("deleted 2000/2010/2013/2013-03/2013-03-03: older than the 2 newest weeks in "
            "2000/2010/2013/2013-03") in text
    assert before_du - du(ws.tree) == dry["bytes_freed"]
    again = json.loads(ws.cya("--now", "2013-04-01T13:00", "trim", "--json").stdout)
    assert again["delete"] == []


def test_keep_week_3_keeps_three_weeks_per_month(untrimmed, tmp_path):
    ws = clone(untrimmed, tmp_path / "ws")
    ws.config.write_text(ws.config.read_text().replace("# keep_week = 2", "keep_week = 3"))
    ws.cya("--now", "2013-04-01T13:00", "trim")
    kids = children_of(ws)
    assert kids["2000/2010/2013/2013-03"] == [f"2000/2010/2013/2013-03/2013-03-{d}"
                                              for d in ("17", "24", "31")]
    assert kids["2000/2010/2013"] == ["2000/2010/2013/2013-02", "2000/2010/2013/2013-03"]
    assert kids["2000/2010/2013/2013-02"] == ["2000/2010/2013/2013-02/2013-02-24"]


@pytest.mark.parametrize("finisher", ["trim", "backup"])
def test_trim_killed_after_the_rename_is_finished_by_the_next_run(untrimmed, tmp_path,
                                                                 finisher):
    ws = clone(untrimmed, tmp_path / "ws")
    died = ws.cya("--now", "2013-04-01T13:00", "trim", check=False,
                  env={"CYA_CRASH_AT": "after-trash-rename"})
    assert died.returncode == 137
    trash = ws.tree / ".cya" / "trash"
    assert len(list(trash.iterdir())) == 3
    # the doomed levels left the tree at once, whole
    assert not (ws.tree / "2000/2010/2013/2013-03/2013-03-03").exists()
    if finisher == "trim":
        ws.cya("--now", "2013-04-01T13:00", "trim")
    else:
        change_source(ws.source, 99)
        ws.backup("2013-04-02T12:00")
    assert list(trash.iterdir()) == []
    for files in ws.files_dirs():
        out = ws.duplicity("collection-status", f"file://{files}").stdout
        assert "No orphaned or incomplete backup sets found" in out


def test_a_failed_trim_keeps_the_backup_and_exits_1(untrimmed, tmp_path):
    ws = clone(untrimmed, tmp_path / "ws")
    trash = ws.tree / ".cya" / "trash"
    trash.rmdir()
    trash.write_text("not a directory")  # every rename into the trash now fails
    change_source(ws.source, 50)
    result = ws.backup("2013-04-02T12:00", check=False)
    assert result.returncode == 1
    assert "is kept, but trimming failed" in result.stderr
    assert "Traceback" not in result.stderr
    week = "2000/2010/2013/2013-03/2013-03-31"
    # the month's chain (the full and one link per week) + 04-01 + 04-02
    assert len(ws.manifests(week)) == len(ws.manifests("2000/2010/2013/2013-03")) + 2 == 8
    assert ws.manifests(week)[-1].startswith("duplicity-inc.20130401T120000Z.to.20130402T")
    assert (ws.tree / "2000/2010/2013/2013-03/2013-03-03").exists()
    os.unlink(trash)


def test_trim_never_follows_a_symlink_out_of_the_tree(untrimmed, tmp_path):
    ws = clone(untrimmed, tmp_path / "ws")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not cya's to delete")
    doomed = ws.tree / "2000/2010/2013/2013-03/2013-03-03"
    (doomed / "escape").symlink_to(outside)
    # a symlink posing as a level is not a level: never trimmed, never followed
    (ws.tree / "2000/2010/2013/2013-03/2013-03-01").symlink_to(outside)
    ws.cya("--now", "2013-04-01T13:00", "trim")
    assert not doomed.exists()
    assert (outside / "precious.txt").read_text() == "not cya's to delete"
    assert (ws.tree / "2000/2010/2013/2013-03/2013-03-01").is_symlink()
