"""Issue 11, item 4: ``cya check`` verifies the local tree without trusting it, and
``cya repair`` puts a damaged or missing file back from a good copy in another level.

Real backups (real duplicity) on four days over two weeks, two months and two years,
so that the full's files are linked into nine levels; each test damages a copy of the
tree of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from cya.core import units
from tests.helpers import Workspace, clone, restored_source, snapshot, with_backups

DAYS = ["2012-12-04", "2012-12-05", "2012-12-10", "2013-01-08"]
FULL_VOLUME = "duplicity-full.20121204T120000Z.vol1.difftar.gpg"
FULL_MANIFEST = "duplicity-full.20121204T120000Z.manifest.gpg"
INC_VOLUME = "duplicity-inc.20121204T120000Z.to.20121210T120000Z.vol1.difftar.gpg"
WEEK = "2000/2010/2012/2012-12/2012-12-09"
MONTH = "2000/2010/2012/2012-12"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return with_backups(tmp_path_factory.mktemp("made"), DAYS)


@pytest.fixture
def copy(made, tmp_path) -> tuple[Workspace, dict]:
    original, states = made
    return clone(original, tmp_path / "ws"), states


def holders(ws: Workspace, name: str) -> list[str]:
    """Every level whose files/ holds ``name``, as check names them."""
    return sorted(str(d.parent.relative_to(ws.tree)) for d in ws.files_dirs()
                  if (d / name).exists())


def check(ws: Workspace, *args: str) -> tuple[int, dict]:
    result = ws.cya("check", "--json", *args, check=False)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def flip(path: Path, offset: int = 100) -> None:
    """Flip one byte in place: the same inode, so every level linking it sees it."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def all_names(ws: Workspace) -> set[str]:
    return {p.name for d in ws.files_dirs() for p in d.iterdir()}


def kinds(report: dict) -> list[tuple[str, str | None]]:
    return [(p["kind"], p["name"]) for p in report["problems"]]


def test_a_clean_tree_passes(made):
    ws, _ = made
    result = ws.cya("check")
    assert "no problem found" in result.stdout
    assert "cya: problem" not in result.stderr and "warning" not in result.stderr
    code, report = check(ws)
    assert code == 0 and report["ok"]
    names = all_names(ws)
    assert report["files"] == len(names) == report["inodes"]
    assert report["read"]["files"] == report["read"]["verified"] == len(names)
    assert report["problems"] == report["warnings"] == []
    assert report["not_verifiable"] == report["skipped"] == 0


def test_a_flipped_byte_is_found_and_named_with_every_level_holding_it(copy):
    ws, _ = copy
    levels = holders(ws, FULL_VOLUME)
    assert len(levels) == 9  # the full is in every level: one inode
    flip(ws.tree / levels[-1] / "files" / FULL_VOLUME)
    result = ws.cya("check", check=False)
    assert result.returncode == 1
    line = next(x for x in result.stderr.splitlines() if FULL_VOLUME in x)
    assert line.startswith("cya: problem: ") and "is damaged" in line
    assert all(level in line for level in levels)
    # no other copy and no bucket: said so, with what it costs
    assert "no good copy is known" in line and "the 4 backup(s) that need it" in line
    code, report = check(ws)
    assert code == 1 and not report["ok"]
    [problem] = report["problems"]
    assert problem["kind"] == "damaged" and problem["name"] == FULL_VOLUME
    assert problem["levels"] == levels
    assert problem["repair"] is None and problem["source"] is None
    assert problem["needed_by"] == [f"{day}T12:00:00Z" for day in DAYS]
    assert report["read"]["files"] == report["inodes"]  # each inode read once
    assert report["read"]["verified"] == report["inodes"] - 1


def test_a_volume_missing_from_one_level_is_found_and_repaired_from_another(copy, tmp_path):
    ws, states = copy
    assert holders(ws, INC_VOLUME) == [MONTH, WEEK]
    (ws.tree / WEEK / "files" / INC_VOLUME).unlink()
    code, report = check(ws)
    assert code == 1
    assert ("missing", INC_VOLUME) in kinds(report)
    missing = next(p for p in report["problems"] if p["kind"] == "missing")
    assert missing["levels"] == [WEEK]
    assert missing["source"] == "tree" and missing["repair"] == f"cya repair {INC_VOLUME}"
    chain = next(p for p in report["problems"] if p["kind"] == "chain")
    assert chain["levels"] == [WEEK] and "lacks volume 1" not in chain["detail"]
    assert "20121210T120000Z lacks its volumes" in chain["detail"]
    assert report["repair"] == f"cya repair {INC_VOLUME}"
    text = ws.cya("check", check=False)
    assert f"cya: repair them with: cya repair {INC_VOLUME}" in text.stderr

    dry = ws.cya("repair", "--dry-run")
    assert f"would repair {INC_VOLUME} (missing from {WEEK}) from the copy in {MONTH}" \
        in dry.stdout
    assert not (ws.tree / WEEK / "files" / INC_VOLUME).exists()
    done = ws.cya("repair")  # what the last check found
    assert f"repaired {INC_VOLUME}" in done.stdout
    assert os.path.samefile(ws.tree / WEEK / "files" / INC_VOLUME,
                            ws.tree / MONTH / "files" / INC_VOLUME)
    assert check(ws)[0] == 0
    assert not list((ws.tree / ".cya" / "staging").iterdir())
    # the repaired week restores by itself, with plain duplicity
    target = tmp_path / "plain"
    ws.duplicity("restore", f"file://{ws.tree / WEEK / 'files'}", str(target))
    assert snapshot(restored_source(target, ws.original_source)) == states["2012-12-10"]
    assert ws.cya("repair").stdout.startswith("nothing to repair")


def test_a_volume_missing_from_every_level_is_found(copy):
    ws, _ = copy
    for level in holders(ws, INC_VOLUME):
        (ws.tree / level / "files" / INC_VOLUME).unlink()
    code, report = check(ws)
    assert code == 1
    missing = next(p for p in report["problems"] if p["kind"] == "missing")
    assert missing["name"] == INC_VOLUME and missing["levels"] == [MONTH, WEEK]
    assert missing["source"] is None and report["repair"] is None
    assert sorted(p["levels"][0] for p in report["problems"] if p["kind"] == "chain") \
        == [MONTH, WEEK]
    result = ws.cya("repair", INC_VOLUME, check=False)
    assert result.returncode == 1
    assert f"cya: problem: {INC_VOLUME} cannot be repaired" in result.stderr
    assert "no good copy is known" in result.stderr


def test_a_copy_instead_of_a_link_is_a_warning(copy):
    ws, _ = copy
    target = ws.tree / WEEK / "files" / FULL_MANIFEST
    shutil.copyfile(ws.tree / MONTH / "files" / FULL_MANIFEST, target.with_suffix(".new"))
    os.replace(target.with_suffix(".new"), target)
    code, report = check(ws)
    assert code == 0 and report["ok"], report["problems"]
    [warning] = report["warnings"]
    assert warning["kind"] == "copy" and warning["name"] == FULL_MANIFEST
    assert "2 separate files" in warning["detail"] and WEEK in warning["levels"]
    assert report["inodes"] == report["files"] + 1
    result = ws.cya("check")
    assert f"cya: warning: {FULL_MANIFEST} is 2 separate files" in result.stderr
    assert "no problem found (see the warnings)" in result.stdout


def test_a_truncated_file_is_found_even_when_the_subset_does_not_read_it(copy):
    ws, _ = copy
    path = ws.tree / MONTH / "files" / INC_VOLUME
    size = path.stat().st_size
    os.truncate(path, size // 2)
    for subset in ("1/3", "2/3", "3/3"):
        code, report = check(ws, "--read-data-subset", subset)
        assert code == 1
        [problem] = [p for p in report["problems"] if p["kind"] == "size"]
        assert problem["name"] == INC_VOLUME and problem["levels"] == [MONTH, WEEK]
        assert f"is {units.size(size // 2)}, {units.size(size)} when it entered the tree" \
            in problem["detail"]


def test_an_empty_file_and_a_stranger_in_files_are_problems(copy):
    ws, _ = copy
    os.truncate(ws.tree / WEEK / "files" / INC_VOLUME, 0)
    (ws.tree / WEEK / "files" / "notes.txt").write_text("mine")
    (ws.tree / WEEK / "files" / (INC_VOLUME + ".part")).write_text("half")
    code, report = check(ws)
    assert code == 1
    found = kinds(report)
    assert ("empty", INC_VOLUME) in found
    unknown = sorted(p["detail"] for p in report["problems"] if p["kind"] == "unknown")
    assert unknown == [f"{WEEK}/files/{INC_VOLUME}.part is a partial file duplicity left: "
                       "move it out of the tree",
                       f"{WEEK}/files/notes.txt is not a duplicity file: move it out of the tree"]


def damage_every_file(ws: Workspace) -> set[str]:
    names = set()
    for directory in ws.files_dirs():
        for path in directory.iterdir():
            if path.name not in names:
                flip(path, 10)
                names.add(path.name)
    return names


def damaged(report: dict) -> set[str]:
    return {p["name"] for p in report["problems"] if p["kind"] == "damaged"}


def read_damaged(report: dict) -> set[str]:
    """What this run itself read and found damaged (not what an earlier run found)."""
    return {p["name"] for p in report["problems"]
            if p["kind"] == "damaged" and "earlier cya check" not in p["detail"]}


def test_read_data_subset_slices_read_every_file_exactly_once(copy):
    ws, _ = copy
    names = damage_every_file(ws)  # so that each run names exactly what it read
    seen = []
    for subset in ("1/3", "2/3", "3/3"):
        code, report = check(ws, "--read-data-subset", subset)
        assert code == 1 and report["subset"] == subset
        assert report["read"]["files"] == len(read_damaged(report))
        assert report["skipped"] == len(names) - len(read_damaged(report))
        seen.append(read_damaged(report))
    assert set().union(*seen) == names
    assert sum(len(s) for s in seen) == len(names)
    assert all(seen)  # 12 names, three slices: none empty here
    # n/m names a slice: the same slice again reads the same files
    assert read_damaged(check(ws, "--read-data-subset", "2/3")[1]) == seen[1]


def test_a_share_rotates_so_that_its_runs_read_everything_once(copy):
    ws, _ = copy
    names = damage_every_file(ws)
    first = read_damaged(check(ws, "--read-data-subset", "50%")[1])
    second = read_damaged(check(ws, "--read-data-subset", "50%")[1])
    assert first | second == names and not first & second
    assert read_damaged(check(ws, "--read-data-subset", "50%")[1]) == first  # round again


def test_files_without_a_recorded_digest_are_counted_and_can_be_recorded(copy):
    ws, _ = copy
    db = sqlite3.connect(ws.tree / ".cya" / "catalog.sqlite")
    with db:
        db.execute("DELETE FROM files")
    db.close()
    code, report = check(ws)
    assert code == 0 and report["not_verifiable"] == report["files"]
    assert report["read"]["files"] == 0
    assert "cya check --record" in ws.cya("check").stdout
    code, report = check(ws, "--record")
    assert code == 0 and report["recorded"] == report["files"]
    code, report = check(ws)
    assert code == 0 and report["not_verifiable"] == 0
    assert report["read"]["verified"] == report["files"]
    flip(ws.tree / MONTH / "files" / INC_VOLUME)
    assert damaged(check(ws)[1]) == {INC_VOLUME}


def test_the_json_report(copy):
    ws, _ = copy
    (ws.tree / WEEK / "files" / INC_VOLUME).unlink()
    code, report = check(ws, "--read-data-subset", "1/2")
    assert code == 1
    assert report["version"] == 1
    assert set(report) == {"version", "tree", "ok", "subset", "levels", "files", "inodes",
                           "bytes", "read", "not_verifiable", "skipped", "recorded",
                           "problems", "warnings", "notes", "repair"}
    assert report["tree"] == str(ws.tree) and report["levels"] == 9
    assert report["ok"] is False and report["subset"] == "1/2"
    assert set(report["read"]) == {"files", "bytes", "verified"}
    for problem in report["problems"]:
        assert set(problem) == {"kind", "name", "levels", "detail", "repair", "source",
                                "source_detail", "needed_by"}
    missing = next(p for p in report["problems"] if p["kind"] == "missing")
    assert missing["needed_by"] == ["2012-12-10T12:00:00Z"]
    assert missing["source_detail"] == f"a good copy is in {MONTH}"


def test_bad_subsets_are_usage_errors(made):
    ws, _ = made
    for text in ("0/3", "4/3", "0%", "101%", "half"):
        result = ws.cya("check", "--read-data-subset", text, check=False)
        assert result.returncode == 2, (text, result.stderr)
        assert result.stderr.startswith("cya: error: --read-data-subset")


def test_a_repair_killed_between_levels_is_finished_by_the_next(copy):
    ws, _ = copy
    # a copy of the full's volume is damaged in three levels (its own inode); the others
    # still hold the good one
    levels = holders(ws, FULL_VOLUME)
    bad = ws.tree / levels[0] / "files" / FULL_VOLUME
    shutil.copyfile(bad, bad.with_suffix(".new"))
    flip(bad.with_suffix(".new"))
    for level in levels[:3]:
        os.link(bad.with_suffix(".new"), ws.tree / level / "files" / (FULL_VOLUME + ".x"))
        os.replace(ws.tree / level / "files" / (FULL_VOLUME + ".x"),
                   ws.tree / level / "files" / FULL_VOLUME)
    bad.with_suffix(".new").unlink()
    code, report = check(ws)
    assert code == 1 and report["problems"][0]["levels"] == levels[:3]
    killed = ws.cya("repair", env={"CYA_CRASH_AT": "repair-linked"}, check=False)
    assert killed.returncode == 137
    # one level was repaired, the other two still hold the damaged copy
    assert damaged(check(ws)[1]) == {FULL_VOLUME}
    assert len(check(ws)[1]["problems"][0]["levels"]) == 2
    ws.cya("repair")
    assert check(ws)[0] == 0
    assert len({(ws.tree / level / "files" / FULL_VOLUME).stat().st_ino
                for level in levels}) == 1
    assert not list((ws.tree / ".cya" / "staging").iterdir())


def test_damage_found_earlier_stays_a_problem_for_subsets_that_do_not_read_it(copy):
    ws, _ = copy
    path = ws.tree / MONTH / "files" / INC_VOLUME
    flip(path)
    assert damaged(check(ws)[1]) == {INC_VOLUME}
    others = ("1/3", "2/3", "3/3")
    for subset in others:
        code, report = check(ws, "--read-data-subset", subset)
        assert code == 1 and damaged(report) == {INC_VOLUME}, subset
    skipped = [p for s in others for p in check(ws, "--read-data-subset", s)[1]["problems"]
               if "earlier cya check" in p["detail"]]
    assert len(skipped) == 2  # the two slices that do not hold it say where it came from
    flip(path)  # the same byte back: the file is whole again
    assert check(ws)[0] == 0
    assert all(check(ws, "--read-data-subset", s)[0] == 0 for s in others)
