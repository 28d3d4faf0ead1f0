"""Issue 11, item 4 with the archive: a damaged file the bucket holds is named by
``cya check`` with the command that repairs it, and ``cya repair`` thaws just its bag,
fetches just that member (ranged GET, SHA-256 verified), and links it back into every
level; the backups then restore exactly. Against moto_server.
"""

from __future__ import annotations

import json

from tests.helpers import change_source, restored_source, snapshot
from tests.s3.conftest import archive_workspace, set_thaw_pending

DAYS = ["2012-12-04", "2012-12-05", "2012-12-10"]
FULL_VOLUME = "duplicity-full.20121204T120000Z.vol1.difftar.gpg"


def flip(path, offset: int = 100) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_a_flipped_byte_is_repaired_from_the_bucket(tmp_path, s3):
    ws = archive_workspace(tmp_path, s3)  # archive.cadence = "backup": off-site every day
    states = {}
    for number, day in enumerate(DAYS):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
        states[day] = snapshot(ws.source)
    levels = sorted(d.parent for d in ws.files_dirs() if (d / FULL_VOLUME).exists())
    assert len(levels) == 6
    flip(levels[0] / "files" / FULL_VOLUME)

    result = ws.cya("check", check=False)
    assert result.returncode == 1
    line = next(x for x in result.stderr.splitlines() if x.startswith("cya: problem: "))
    assert FULL_VOLUME in line and "is damaged" in line and "the bucket holds it" in line
    assert f"cya: repair them with: cya repair {FULL_VOLUME}" in result.stderr
    report = json.loads(ws.cya("check", "--json", check=False).stdout)
    [problem] = report["problems"]
    assert problem["source"] == "bucket" and problem["repair"] == f"cya repair {FULL_VOLUME}"

    dry = ws.cya("repair", "--dry-run")
    assert f"would repair {FULL_VOLUME}" in dry.stdout and "from the bucket" in dry.stdout
    assert "from the archive: thaw 1 bag(s)" in dry.stdout
    assert not json.loads(ws.cya("repair", "--dry-run", "--json").stdout)["repaired"]

    set_thaw_pending(s3.endpoint, 10)  # S3 says the thaw is still going
    try:
        first = ws.cya("repair", check=False)  # asks for the thaw: Deep Archive takes hours
        second = ws.cya("repair", check=False)
    finally:
        set_thaw_pending(s3.endpoint, None)
    assert first.returncode == 75, first.stderr
    assert "asked S3 to thaw" in first.stdout and "run the same command again" in first.stderr
    assert second.returncode == 75 and "asked S3" not in second.stdout, second
    assert (levels[0] / "files" / FULL_VOLUME).stat().st_nlink == 6  # nothing touched yet
    done = ws.cya("repair")
    assert "every SHA-256 verified" in done.stdout
    assert f"repaired {FULL_VOLUME}" in done.stdout

    assert json.loads(ws.cya("check", "--json").stdout)["ok"]
    assert len({(level / "files" / FULL_VOLUME).stat().st_ino for level in levels}) == 1
    assert not list((ws.tree / ".cya" / "staging").iterdir())
    for day in DAYS:
        target = tmp_path / f"restored-{day}"
        ws.cya("restore", "--date", day, "--target", str(target))
        assert snapshot(restored_source(target, ws.source)) == states[day]
