"""The backup driver with real duplicity: chains per level, shared inodes, and plain
duplicity (no cya) restoring every level's files/ exactly."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers import restored_source, snapshot, with_backups

# DESIGN.md / issue 2 acceptance: noon on these days ...
DAYS = ["2012-12-04", "2012-12-05", "2012-12-08", "2012-12-09", "2012-12-10",
        "2012-12-30", "2013-01-01", "2013-01-06", "2013-01-07"]
# ... give exactly these chains (backups per files/)
EXPECTED_CHAINS = {
    "2000": 1,
    "2000/2010": 2,
    "2000/2010/2012": 1,
    "2000/2010/2012/2012-12": 3,
    "2000/2010/2012/2012-12/2012-12-02": 3,
    "2000/2010/2012/2012-12/2012-12-09": 3,
    "2000/2010/2012/2012-12/2012-12-30": 4,
    "2000/2010/2013": 2,
    "2000/2010/2013/2013-01": 2,
    "2000/2010/2013/2013-01/2013-01-06": 3,
}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Run the nine backups once (untrimmed); record the source as it was at each."""
    return with_backups(tmp_path_factory.mktemp("scenario"), DAYS, "--no-trim")


def test_chain_lengths_per_level(scenario):
    ws, _ = scenario
    levels = [str(d.parent.relative_to(ws.tree)) for d in ws.files_dirs()]
    chains = {level: len(ws.manifests(level)) for level in levels}
    assert chains == EXPECTED_CHAINS


def test_every_duplicity_file_is_one_inode(scenario):
    ws, _ = scenario
    inodes_by_name = defaultdict(set)
    copies = defaultdict(int)
    for files in ws.files_dirs():
        for entry in files.iterdir():
            info = entry.lstat()
            assert stat.S_ISREG(info.st_mode)
            inodes_by_name[entry.name].add(info.st_ino)
            copies[entry.name] += 1
    assert inodes_by_name, "the tree holds no duplicity files"
    for name, inodes in inodes_by_name.items():
        assert len(inodes) == 1, f"{name} has {len(inodes)} inodes"
        (inode,) = inodes
        # the link count is exactly the number of levels holding it: no stray copies
        some_path = next(p / name for p in ws.files_dirs() if (p / name).exists())
        assert some_path.stat().st_nlink == copies[name]
    # the first full is in every level
    full_manifest = next(n for n in inodes_by_name if n.startswith("duplicity-full.2012"))
    assert copies[full_manifest] == len(EXPECTED_CHAINS)


def test_collection_status_is_clean_in_every_level(scenario):
    ws, _ = scenario
    for files in ws.files_dirs():
        out = ws.duplicity("collection-status", f"file://{files}").stdout
        assert "No orphaned or incomplete backup sets found" in out, (files, out)
        count = EXPECTED_CHAINS[str(files.parent.relative_to(ws.tree))]
        assert f"Number of contained backup sets: {count}" in out


def _backup_days(level: str) -> list[str]:
    """The backup days whose backup is in a level's chain, per the placement rules."""
    expected = {
        "2000": ["2012-12-04"],
        "2000/2010": ["2012-12-04", "2013-01-06"],
        "2000/2010/2012": ["2012-12-04"],
        "2000/2010/2012/2012-12": ["2012-12-04", "2012-12-09", "2012-12-30"],
        "2000/2010/2012/2012-12/2012-12-02": ["2012-12-04", "2012-12-05", "2012-12-08"],
        "2000/2010/2012/2012-12/2012-12-09": ["2012-12-04", "2012-12-09", "2012-12-10"],
        "2000/2010/2012/2012-12/2012-12-30": ["2012-12-04", "2012-12-09", "2012-12-30",
                                              "2013-01-01"],
        "2000/2010/2013": ["2012-12-04", "2013-01-06"],
        "2000/2010/2013/2013-01": ["2012-12-04", "2013-01-06"],
        "2000/2010/2013/2013-01/2013-01-06": ["2012-12-04", "2013-01-06", "2013-01-07"],
    }
    return expected[level]


@pytest.mark.parametrize("level", sorted(EXPECTED_CHAINS))
def test_plain_duplicity_restores_each_level_exactly(scenario, level, tmp_path):
    """At a time between backups, a level restores the newest backup of its chain before it."""
    ws, states = scenario
    files = ws.tree / level / "files"
    days = _backup_days(level)
    # the newest backup of the chain, and (for chains of 2+) an older one asked for a day
    # later than it was made: both must give the source exactly as it was then
    asks = [(days[-1], f"{days[-1]}T23:00:00Z")]
    if len(days) > 1:
        asks.append((days[-2], f"{days[-2]}T18:00:00Z"))
    for made, asked in asks:
        target = tmp_path / f"restore-{made}"
        ws.duplicity("restore", "--time", asked, f"file://{files}", str(target))
        assert snapshot(restored_source(target, ws.source)) == states[made], (level, made)


def test_catalog_records_each_backup(scenario):
    ws, _ = scenario
    db = sqlite3.connect(ws.tree / ".cya" / "catalog.sqlite")
    rows = db.execute(
        "SELECT time, leaf, base, full, new_levels FROM backups ORDER BY time").fetchall()
    assert [r[0] for r in rows] == [d.replace("-", "") + "T120000Z" for d in DAYS]
    assert rows[0][2] is None and rows[0][3] == 1
    assert rows[7][1:4] == ("2000/2010/2013/2013-01/2013-01-06", "2000/2010", 0)
    assert rows[7][4].split() == ["2000/2010/2013", "2000/2010/2013/2013-01",
                                  "2000/2010/2013/2013-01/2013-01-06"]


def test_state_and_caches_are_private_and_bounded(scenario):
    ws, _ = scenario
    assert stat.S_IMODE(ws.tree.stat().st_mode) == 0o700
    assert stat.S_IMODE(ws.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(ws.passphrase_file.stat().st_mode) == 0o600
    caches = [p for p in (ws.cache / "cya").iterdir() if p.name != "runs"]
    assert len(caches) == 1  # one tree
    assert stat.S_IMODE((ws.cache / "cya").stat().st_mode) == 0o700
    assert list((ws.cache / "cya" / "runs").iterdir()) == []  # no run left a record
    assert stat.S_IMODE(caches[0].stat().st_mode) == 0o700
    # only the level being written keeps a cache
    assert [p.name for p in caches[0].iterdir()] == ["week-2013-01-06"]
    # nothing is left in staging, no journal
    assert list((ws.tree / ".cya" / "staging").iterdir()) == []
    assert not (ws.tree / ".cya" / "journal.json").exists()


def test_no_secret_in_tree_state_or_catalog(scenario):
    ws, _ = scenario
    secret = ws.passphrase().encode()
    for root, _dirs, names in os.walk(ws.tree / ".cya"):
        for name in names:
            assert secret not in (Path(root) / name).read_bytes()
    assert secret not in ws.config.read_bytes()


def test_backup_time_not_after_newest_is_refused(scenario):
    ws, _ = scenario
    for when in ("2013-01-07T12:00:00", "2013-01-02T09:00:00"):
        result = ws.backup(when, check=False)
        assert result.returncode == 2
        assert "is not after the newest backup" in result.stderr
        assert "Traceback" not in result.stderr
