"""Issue 12, items 4, 5, 6, 8, 9, 10 and 11: cya never says "done" over data that is not
safe, and never reports a backup, a file or a state that is not there.

4. symlinked sources and a tree reached through a symlink;
5. a broken chain, and a fake manifest;
6. changing week_start keeps every week in the archive;
8. times: DST, the future, before 1970 and from 2100;
9. config values of the wrong type;
10. names that are not UTF-8 or hold a newline;
11. status while a restore or a backup holds the lock; a wrong restore --path.
"""

from __future__ import annotations

import codecs
import fcntl
import json
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import (
    CYA,
    Workspace,
    assert_one_line_error,
    change_source,
    clone,
    failing_duplicity,
    restored_source,
    snapshot,
    tree_state,
    with_backups,
)
from tests.s3.conftest import (  # noqa: F401 (fixtures)
    archive_workspace,
    moto_endpoint,
    s3,
)


def catalog_times(ws: Workspace) -> list[str]:
    db = sqlite3.connect(ws.tree / ".cya" / "catalog.sqlite")
    try:
        return [row[0] for row in db.execute("SELECT time FROM backups ORDER BY time")]
    finally:
        db.close()


def set_line(ws: Workspace, key: str, line: str) -> None:
    """Replace the config line that sets ``key`` (its first occurrence) by ``line``."""
    text = ws.config.read_text()
    new, count = re.subn(rf"(?m)^{re.escape(key)} = .*$", line, text, count=1)
    assert count == 1, (key, text)
    ws.config.write_text(new)


def warnings(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# -- 4. symlinked sources --------------------------------------------------------------

@pytest.mark.parametrize("how", ["link to the source", "source under a symlinked parent"])
def test_a_symlinked_source_backs_up_what_it_points_to(tmp_path, how):
    ws = Workspace(tmp_path)
    if how == "link to the source":
        real = tmp_path / "real-src"
        real.mkdir()
        ws.source = tmp_path / "srclink"
        ws.source.symlink_to(real)
        moved_top = real
    else:  # /home -> /data/home, source /home/me
        real = tmp_path / "data" / "home" / "me"
        real.mkdir(parents=True)
        (tmp_path / "home").symlink_to(tmp_path / "data" / "home")
        ws.source = tmp_path / "home" / "me"
        moved_top = tmp_path / "data" / "home"
    change_source(real, 0)
    expected = snapshot(real)
    ws.init()
    ws.backup("2012-12-04T12:00")
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "now", "--target", str(target))
    assert snapshot(restored_source(target, real)) == expected
    # a source that resolves to nothing is refused, nothing written
    moved_top.rename(moved_top.with_name(moved_top.name + ".moved"))
    before = tree_state(ws.tree)
    result = ws.backup("2012-12-05T12:00", check=False)
    assert_one_line_error(result, 2, str(ws.source))
    assert tree_state(ws.tree) == before and catalog_times(ws) == ["20121204T120000Z"]


def test_a_tree_reached_through_a_symlink_inside_a_source_is_not_backed_up(tmp_path):
    ws = Workspace(tmp_path)
    (tmp_path / "srclink").symlink_to(ws.source)
    ws.tree = tmp_path / "srclink" / "tree"  # really inside the source
    change_source(ws.source, 0)
    ws.init()
    ws.backup("2012-12-04T12:00")
    change_source(ws.source, 1)
    ws.backup("2012-12-05T12:00")
    listed = json.loads(ws.cya("ls", "--date", "now", str(ws.source), "--json").stdout)
    paths = [entry["path"] for entry in listed["files"]]
    assert not [p for p in paths if "duplicity-" in p or "/.cya" in p], paths
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "now", "--target", str(target))
    names = [p.name for p in target.rglob("*")]
    assert "journal.txt" in names
    assert not [n for n in names if n.startswith("duplicity-") or n == ".cya"], names


# -- 5. a broken chain, a fake manifest ------------------------------------------------

WEEK = "2000/2010/2012/2012-12/2012-12-02"
CHAIN_DAYS = ["2012-12-04", "2012-12-05", "2012-12-07"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Three backups in one week: a full and two incrementals."""
    return with_backups(tmp_path_factory.mktemp("chain"), CHAIN_DAYS)


def orphans(ws: Workspace, level: str) -> tuple[int, int]:
    """(sets not part of any chain, incomplete sets) plain duplicity reports for a level."""
    out = ws.duplicity("collection-status", f"file://{ws.tree / level / 'files'}").stdout
    found = re.search(r"Also found (\d+) backup set\(s\) not part of any chain,\s*"
                      r"and (\d+) incomplete backup set\(s\)", out)
    assert found, out
    return int(found[1]), int(found[2])


def test_a_broken_chain_is_not_built_on_and_not_counted(chain, tmp_path):
    made, states = chain
    ws = clone(made, tmp_path / "copy")
    manifest = ws.tree / WEEK / "files" / (
        "duplicity-inc.20121204T120000Z.to.20121205T120000Z.manifest.gpg")
    assert manifest.stat().st_nlink == 1  # the week's own increment
    manifest.unlink()
    status_before = orphans(ws, WEEK)
    change_source(ws.source, 3)
    now_state = snapshot(ws.source)
    result = ws.backup("2012-12-08T12:00", check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = warnings(result)
    assert len(lines) == 1 and lines[0].startswith("cya: warning: "), result.stderr
    assert "broken" in lines[0] and "full" in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    # the backup it made restores exactly
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2012-12-08", "--target", str(target))
    # (the copy backs up its own source: the new full holds that path)
    assert snapshot(restored_source(target, ws.source)) == now_state
    # plain duplicity sees no more orphaned or incomplete sets than before
    after = orphans(ws, WEEK)
    assert after[0] <= status_before[0] and after[1] <= status_before[1], (status_before, after)
    # 12-05 (no manifest) and 12-07 (built on it) are not restorable: 12-04 and 12-08 are
    listing = json.loads(ws.cya("ls", "--json").stdout)
    status = json.loads(ws.cya("--now", "2012-12-09T12:00", "status", "--json").stdout)
    assert listing["restorable_backups"] == 2, listing
    assert status["restorable_backups"] == 2, status
    # a date inside the break restores the backup before it, without a false excuse
    earlier = tmp_path / "earlier"
    out = ws.cya("restore", "--date", "2012-12-05", "--target", str(earlier)).stdout
    assert snapshot(restored_source(earlier, made.source)) == states["2012-12-04"]
    assert "trimmed" not in out, out


def test_a_fake_manifest_is_not_a_restorable_backup(chain, tmp_path):
    made, states = chain
    ws = clone(made, tmp_path / "copy")
    listing = json.loads(ws.cya("ls", "--json").stdout)
    assert listing["restorable_backups"] == 3
    for level in (WEEK, "2000/2010"):
        (ws.tree / level / "files" / "duplicity-full.20121206T120000Z.manifest.gpg").touch()
    listing = json.loads(ws.cya("ls", "--json").stdout)
    status = json.loads(ws.cya("--now", "2012-12-09T12:00", "status", "--json").stdout)
    assert listing["restorable_backups"] == 3, listing
    assert status["restorable_backups"] == 3, status
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2012-12-06", "--target", str(target))
    assert snapshot(restored_source(target, made.source)) == states["2012-12-05"]


# -- 6. week_start changed: every week still goes to the archive -----------------------

def test_changing_week_start_keeps_every_week_in_the_year_index(tmp_path, s3):  # noqa: F811
    ws = archive_workspace(tmp_path, s3)
    for number, day in enumerate(["2012-12-04", "2012-12-05"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
    set_line(ws, "week_start", 'week_start = "monday"')
    year = ws.tree / "2000/2010/2012"
    levels = {str(files.parent.relative_to(ws.tree)) for files in ws.files_dirs()
              if year in files.parents}
    assert f"{WEEK}" in levels and len(levels) == 3
    change_source(ws.source, 2)
    out = ws.backup("2013-01-08T12:00").stdout
    assert "year(s) 2000/2010/2012" in out
    index = json.loads(s3.get_object(Bucket=s3.bucket, Key="years/2012.json")["Body"].read())
    indexed = {path.rsplit("/files/", 1)[0] for path in index["files"]}
    assert levels <= indexed, sorted(levels - indexed)


# -- 8. time ----------------------------------------------------------------------------

@pytest.fixture
def london(tmp_path) -> Workspace:
    ws = Workspace(tmp_path)
    ws.env["TZ"] = "Europe/London"
    ws.init()
    change_source(ws.source, 0)
    return ws


def test_a_backup_in_the_dst_fall_back_hour_works_and_restores(london, tmp_path):
    expected = snapshot(london.source)
    london.backup("2013-10-27T01:30")
    target = tmp_path / "restored"
    london.cya("restore", "--date", "now", "--target", str(target))
    assert snapshot(restored_source(target, london.source)) == expected


def test_a_time_in_the_dst_gap_is_refused(london):
    before = tree_state(london.tree)
    result = london.backup("2013-03-31T01:30", check=False)
    assert_one_line_error(result, 2, "2013-03-31")
    assert tree_state(london.tree) == before and catalog_times(london) == []


def test_a_future_backup_needs_allow_future_and_status_says_so(ws):
    change_source(ws.source, 0)
    before = tree_state(ws.tree)
    result = ws.backup("2099-06-15", check=False)
    assert_one_line_error(result, 2, "future")
    assert tree_state(ws.tree) == before and catalog_times(ws) == []
    ws.backup("2099-06-15", "--allow-future")
    assert catalog_times(ws) == ["20990615T000000Z"]
    late = ws.cya("status", "--max-age", "36h", check=False)
    assert late.returncode == 1, (late.stdout, late.stderr)
    assert "future" in late.stderr, late.stderr


@pytest.mark.parametrize("when", ["1969-12-31", "2100-01-02"])
def test_times_duplicity_cannot_handle_are_refused_up_front(ws, when):
    change_source(ws.source, 0)
    before = tree_state(ws.tree)
    tries = [()] if when < "1970" else [(), ("--allow-future",)]  # not even when asked
    for allow in tries:
        result = ws.backup(when, *allow, check=False)
        assert_one_line_error(result, 2, when[:4])
        assert tree_state(ws.tree) == before and catalog_times(ws) == []
        assert not list((ws.tree / ".cya" / "staging").iterdir())


# -- 9. config values of the wrong type -------------------------------------------------

@pytest.mark.parametrize("key, line, named", [
    ("exclude", 'exclude = "**/secret.key"', "exclude"),
    ("exclude", "exclude = [1]", "exclude"),
    ("duplicity_options", 'duplicity_options = "--volsize 1"', "duplicity_options"),
    ("storage_class", 'storage_class = "BOGUS"', "archive.storage_class"),
    ("bag_size", 'bag_size = "99999TB"', "archive.bag_size"),
], ids=["exclude string", "exclude [1]", "duplicity_options string", "storage_class",
        "bag_size"])
def test_a_config_value_of_the_wrong_type_is_refused(ws, key, line, named):
    (ws.source / "secret.key").write_text("do not back me up\n")
    set_line(ws, key, line)
    before = tree_state(ws.tree)
    result = ws.backup("2012-12-04T12:00", check=False)
    assert_one_line_error(result, 2, named)
    assert tree_state(ws.tree) == before and ws.files_dirs() == [] and catalog_times(ws) == []


# -- 10. names are bytes -----------------------------------------------------------------

CAFE = b"caf\xe9.txt"
NEWLINE = b"new\nline.txt"
BOTH = b"caf\xe9\nnew.txt"  # not UTF-8 and a line break: duplicity's log could not say it


def as_bytes(shown: str) -> bytes:
    """The bytes of a path as ``--json`` gives it: Python's surrogate escapes (what
    ``os.fsdecode`` makes of a name that is not UTF-8), or the backslash escapes the text
    output uses (``\\xe9``, ``\\n``, ``\\\\``)."""
    if any("\udc80" <= char <= "\udcff" for char in shown):
        return os.fsencode(shown)
    if "\\" in shown:
        return codecs.escape_decode(shown.encode())[0]
    return shown.encode()


def test_names_that_are_not_utf8_or_hold_a_newline_are_listed_and_restored(ws, tmp_path):
    source = os.fsencode(ws.source)
    change_source(ws.source, 0)
    for name in (CAFE, NEWLINE, BOTH):
        with open(source + b"/" + name, "wb") as handle:
            handle.write(b"contents of " + name)
    expected = snapshot(ws.source)
    ws.backup("2012-12-04T12:00")

    found = ws.cya("find", "caf*").stdout
    assert "caf\\xe9.txt" in found, found
    found_json = json.loads(ws.cya("find", "caf*", "--json").stdout)
    assert sorted(as_bytes(m["path"]) for f in found_json for m in f["matches"]) == sorted([
        source + b"/" + CAFE, source + b"/" + BOTH])

    text = ws.cya("ls", "--date", "now", str(ws.source)).stdout
    assert "caf\\xe9.txt" in text and "new\\nline.txt" in text, text
    listed = json.loads(ws.cya("ls", "--date", "now", str(ws.source), "--json").stdout)
    assert not [e for e in listed["files"] if e["type"] == "gone"], listed["files"]
    paths = {as_bytes(e["path"]): e for e in listed["files"]}
    for name in (CAFE, NEWLINE, BOTH):
        entry = paths[source + b"/" + name]
        assert entry["type"] == "file" and entry["size"] == len(b"contents of " + name)

    target = tmp_path / "restored"
    ws.cya("restore", "--date", "now", "--target", str(target))
    restored = restored_source(target, ws.source)
    assert {CAFE, NEWLINE, BOTH} <= set(os.listdir(os.fsencode(restored)))
    assert snapshot(restored) == expected


# -- 11. status and the lock; restore --path checked first ------------------------------

@pytest.fixture(scope="module")
def one_backup(tmp_path_factory):
    ws, _ = with_backups(tmp_path_factory.mktemp("one"), ["2012-12-04"])
    return ws


def _hold(lock: Path, how: int) -> int:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, how | fcntl.LOCK_NB)
    return fd


def test_status_while_a_restore_holds_the_lock_is_not_free(one_backup, tmp_path):
    ws = clone(one_backup, tmp_path / "copy")
    fd = _hold(ws.tree / ".cya" / "lock", fcntl.LOCK_SH)  # what a restore holds
    try:
        text = ws.cya("status").stdout
        data = json.loads(ws.cya("status", "--json").stdout)
        busy = ws.backup("2012-12-05T12:00", check=False)
    finally:
        os.close(fd)
    assert "lock: free" not in text, text
    assert data["lock_holder"], data
    assert busy.returncode == 75, busy.stderr


def test_status_while_a_backup_runs_says_it_runs(one_backup, tmp_path):
    ws = clone(one_backup, tmp_path / "copy")
    change_source(ws.source, 1)
    # a real journal, as a backup writes it before duplicity starts
    killed = ws.cya("--now", "2012-12-05T12:00", "backup", check=False,
                    env={"CYA_CRASH_AT": "after-journal"})
    assert killed.returncode == 137 and (ws.tree / ".cya" / "journal.json").exists()
    lock = ws.tree / ".cya" / "lock"
    fd = _hold(lock, fcntl.LOCK_EX)  # and the lock a running backup holds
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0)
        text = ws.cya("status").stdout
        data = json.loads(ws.cya("status", "--json").stdout)
    finally:
        os.close(fd)
    assert "running" in text and "interrupted" not in text, text
    assert data["interrupted_run_pending"] is False, data
    assert data["lock_holder"] and str(os.getpid()) in data["lock_holder"], data
    # once nobody holds the lock, the same journal is an interrupted run
    assert "interrupted" in ws.cya("status").stdout


@pytest.mark.parametrize("which", ["relative", "missing"])
def test_a_wrong_restore_path_fails_fast_before_duplicity(one_backup, tmp_path, which):
    ws = one_backup
    env, marker = failing_duplicity(tmp_path)
    if which == "relative":  # the right file, written without its leading /
        path, needles = str(ws.source / "journal.txt").lstrip("/"), ("absolute",)
    else:
        path, needles = "/does/not/exist", ("/does/not/exist",)
    target = tmp_path / "out"
    started = time.monotonic()
    result = subprocess.run([CYA, "restore", "--date", "now", "--target", str(target),
                             "--path", path], env={**ws.env, **env},
                            capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert_one_line_error(result, 2, *needles)
    assert elapsed < 3, elapsed
    assert not marker.exists(), "duplicity was started"
    assert not target.exists()
