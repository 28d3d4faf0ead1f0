"""The read side on a trimmed tree, with real duplicity: restore any date exactly,
--path, ls, ls --date, find and status checked for content."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime

import pytest

from tests.helpers import (
    assert_one_line_error,
    change_source,
    clone,
    failing_duplicity,
    restored_source,
    snapshot,
    tree_state,
    with_backups,
)

DAYS = ["2012-12-04", "2012-12-05", "2012-12-11", "2012-12-18", "2012-12-25",
        "2013-01-08", "2013-01-15", "2013-01-22", "2013-02-05", "2013-02-12"]


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    """Ten backups with automatic trimming; the source recorded as it was at each."""
    ws, states = with_backups(tmp_path_factory.mktemp("browse"), DAYS)
    assert not (ws.tree / "2000/2010/2012/2012-12/2012-12-02").exists(), "not trimmed"
    return ws, states


def restore(ws, tmp_path, date, *extra, name="out"):
    target = tmp_path / name
    result = ws.cya("--now", "2013-02-13T12:00", "restore", "--date", date,
                    "--target", str(target), *extra)
    return target, result


@pytest.mark.parametrize("asked, expected, words", [
    ("2013-02-12T12:00:00", "2013-02-12", "the same time"),          # equal to a backup
    ("2013-01-20", "2013-01-15", "5 days earlier"),                  # between two backups
    ("2012-12-05T23:00", "2012-12-04", "finer backups of that period were trimmed"),
    ("now", "2013-02-12", "1 days earlier".replace("1 days", "24 hours")),
])
def test_restore_gives_exactly_the_expected_backup(trimmed, tmp_path, asked, expected, words):
    ws, states = trimmed
    target, result = restore(ws, tmp_path, asked)
    assert snapshot(restored_source(target, ws.source)) == states[expected]
    assert f"as of {expected} 12:00:00" in result.stdout
    assert words in result.stdout
    # modes and mtimes come back too (snapshot compares them); spot-check the 0600 file
    restored_key = restored_source(target, ws.source) / "private.key"
    assert stat.S_IMODE(restored_key.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if ".cya-restore-" in p.name]


def test_restore_before_the_first_backup_names_the_earliest(trimmed, tmp_path):
    ws, _ = trimmed
    result = ws.cya("restore", "--date", "2012-12-01", "--target", str(tmp_path / "o"),
                    check=False)
    assert_one_line_error(result, 1, "no backup at or before 2012-12-01",
                          "earliest restorable date is 2012-12-04 12:00:00")
    assert not (tmp_path / "o").exists()


def test_restore_a_file_and_a_directory(trimmed, tmp_path):
    ws, states = trimmed
    file_path = str(ws.source / "ünïcödé naïve.txt")
    target, _ = restore(ws, tmp_path, "2013-01-15", "--path", file_path, name="one")
    assert sorted(os.listdir(target)) == ["ünïcödé naïve.txt"]
    restored = snapshot(target)["ünïcödé naïve.txt"]
    assert restored == states["2013-01-15"]["ünïcödé naïve.txt"]
    target, _ = restore(ws, tmp_path, "2013-01-15", "--path", str(ws.source / "docs"),
                        name="dir")
    expected = {k[len("docs/"):]: v for k, v in states["2013-01-15"].items()
                if k.startswith("docs/")}
    assert snapshot(target / "docs") == expected and expected


def test_restore_refuses_a_non_empty_target_and_leaves_it_alone(trimmed, tmp_path):
    ws, states = trimmed
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = tree_state(target)
    result = ws.cya("restore", "--date", "now", "--target", str(target), check=False)
    assert_one_line_error(result, 2, f"target {target} is not empty", "--force")
    assert tree_state(target) == before
    ws.cya("restore", "--date", "now", "--target", str(target), "--force")
    # --force merges: what the backup does not hold stays, untouched
    assert (target / "keep.txt").read_text() == "mine"
    assert tree_state(target)["keep.txt"] == before["keep.txt"]
    assert snapshot(restored_source(target, ws.source)) == states["2013-02-12"]


def test_restore_bad_date_and_dry_run(trimmed, tmp_path):
    ws, _ = trimmed
    result = ws.cya("restore", "--date", "not-a-date", "--target", str(tmp_path / "x"),
                    check=False)
    assert_one_line_error(result, 2, "--date 'not-a-date' is not a date", "2W")
    dry = ws.cya("--now", "2013-02-13T12:00", "restore", "--date", "2013-01-20",
                 "--target", str(tmp_path / "x"), "--dry-run").stdout
    assert "would restore everything as of 2013-01-15 12:00:00" in dry
    assert "chain of 3" in dry and "volume(s)" in dry and "to read" in dry
    assert not (tmp_path / "x").exists()


def test_ls_tree_and_json(trimmed, tmp_path):
    ws, _ = trimmed
    env, marker = failing_duplicity(tmp_path)
    text = ws.cya("ls", env=env).stdout
    assert "2012-12-23" in text and "2012-12-02" not in text
    data = json.loads(ws.cya("ls", "--json", env=env).stdout)
    levels = {entry["level"]: entry for entry in data["levels"]}
    month = levels["2000/2010/2012/2012-12"]
    assert [b["time"] for b in month["backups"]] == [
        "2012-12-04T12:00:00Z", "2012-12-11T12:00:00Z", "2012-12-18T12:00:00Z",
        "2012-12-25T12:00:00Z"]
    assert month["chain_length"] == 4 and month["backups"][0]["full"] is True
    week = levels["2000/2010/2013/2013-02/2013-02-10"]
    assert [b["time"] for b in week["backups"]][-1] == "2013-02-12T12:00:00Z"
    # 02-12 was the week's first backup, so the month holds it too: nothing is unique
    assert week["unique_bytes"] == 0
    assert data["restorable_backups"] == 9  # all but 12-05 (its week was trimmed)
    assert not marker.exists()
    # a second backup in that week lives only there
    copy = clone(ws, tmp_path / "copy")
    change_source(copy.source, 40)
    copy.backup("2013-02-13T12:00")
    again = {e["level"]: e for e in json.loads(copy.cya("ls", "--json").stdout)["levels"]}
    files = copy.tree / "2000/2010/2013/2013-02/2013-02-10/files"
    only_here = sum(p.stat().st_size for p in files.iterdir() if "20130213T" in p.name)
    assert again["2000/2010/2013/2013-02/2013-02-10"]["unique_bytes"] == only_here > 0


def test_ls_date_lists_files_with_sizes(trimmed, tmp_path):
    ws, states = trimmed
    env, marker = failing_duplicity(tmp_path)
    data = json.loads(ws.cya("ls", "--date", "2013-01-20", str(ws.source), "--json",
                             env=env).stdout)
    assert data["backup"] == "2013-01-15T12:00:00Z" and data["sizes_known"]
    files = {entry["path"]: entry for entry in data["files"]}
    expected = states["2013-01-15"]
    assert {p for p in files if p != str(ws.source)} == {f"{ws.source}/{k}" for k in expected}
    for name in ("data.bin", "journal.txt", "private.key"):
        assert files[f"{ws.source}/{name}"]["size"] == expected[name][4]
        assert files[f"{ws.source}/{name}"]["mtime"] == \
            datetime.fromtimestamp(expected[name][3], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert files[f"{ws.source}/empty"]["size"] == 0
    assert files[f"{ws.source}/link"]["type"] == "symlink"
    text = ws.cya("ls", "--date", "2013-01-20", str(ws.source / "docs"), env=env).stdout
    assert "note 6.txt" in text and "note 5.txt" in text and "note 4.txt" not in text
    assert not marker.exists()


def test_find_names_backups_and_sizes(trimmed, tmp_path):
    ws, _ = trimmed
    env, marker = failing_duplicity(tmp_path)
    found = json.loads(ws.cya("find", "note 3.txt", "--json", env=env).stdout)
    # note 3 exists from the 4th backup (12-18) until it is deleted two backups later
    assert [f["backup"] for f in found] == ["2012-12-18T12:00:00Z", "2012-12-25T12:00:00Z"]
    assert found[0]["matches"][0]["size"] == len("note of day 3\n") * 4
    everything = json.loads(ws.cya("find", f"{ws.source}/**.txt", "--json", env=env).stdout)
    assert len(everything) == 9
    text = ws.cya("find", "*.key", env=env).stdout
    assert text.count("private.key") == 9
    assert not marker.exists()


def test_status_json_and_max_age(trimmed, tmp_path):
    ws, _ = trimmed
    env, marker = failing_duplicity(tmp_path)
    data = json.loads(ws.cya("--now", "2013-02-13T12:00", "status", "--json", env=env).stdout)
    assert data["last_backup"] == "2013-02-12T12:00:00Z"
    assert data["age_seconds"] == 86400
    assert data["current_leaf"] == "2000/2010/2013/2013-02/2013-02-10"
    assert data["lock_holder"] is None and data["levels"] == len(ws.files_dirs())
    assert data["longest_chain"] >= 2 and data["total_bytes"] > 0
    ok = ws.cya("--now", "2013-02-13T12:00", "status", "--max-age", "36h", env=env)
    assert ok.returncode == 0
    late = ws.cya("--now", "2013-02-15T12:00", "status", "--max-age", "36h", env=env,
                  check=False)
    assert late.returncode == 1 and "72.0 hours old, more than --max-age 36h" in late.stderr
    assert not marker.exists()


def test_backups_without_an_index_are_listed_by_duplicity(trimmed, tmp_path):
    ws, states = trimmed
    copy = clone(ws, tmp_path / "copy")
    db = sqlite3.connect(copy.tree / ".cya" / "catalog.sqlite")
    with db:
        db.execute("DELETE FROM file_index")
    db.close()
    # (the backups hold the original source's paths)
    data = json.loads(copy.cya("ls", "--date", "2013-01-20", str(ws.source), "--json").stdout)
    assert not data["sizes_known"]
    paths = {entry["path"] for entry in data["files"]} - {str(ws.source)}
    assert paths == {f"{ws.source}/{k}" for k in states["2013-01-15"]}


def test_timeline_shades_each_day_by_how_near_a_restore_gets(trimmed, tmp_path):
    ws, _ = trimmed
    page = tmp_path / "timeline.html"
    out = ws.cya("timeline", "--html", str(page)).stdout
    rows = {line[:7]: line[9:] for line in out.splitlines() if line[:4].isdigit()}
    assert list(rows) == ["2012-12", "2013-01", "2013-02"]
    days = rows["2012-12"] + rows["2013-01"] + rows["2013-02"]
    assert len(days) == 31 + 31 + 28
    assert days[:3] == "···"  # before the first backup
    kept = [3, 10, 17, 24, 31 + 7, 31 + 14, 31 + 21, 62 + 4, 62 + 11]  # 12-05 was trimmed
    assert [i for i, shade in enumerate(days) if shade == "█"] == kept
    assert days[4] == "▓"  # 12-05: the nearest point is 12-04, a day earlier
    assert days[31 + 6] == "▒"  # 01-07: the nearest is 12-25, 13 days earlier
    assert days[62 + 12:] == "·" * 16  # the calendar ends with the newest backup
    text = page.read_text()
    assert text.count("<tr>") == 3 and "2013-02-12: a backup of that day" in text
