"""Issue 12, items 3 and 7, against a real S3-protocol server (moto_server):

3. a bag missing from the bucket is never reused silently, and the tree never lets go of
   a level whose only other copy is that bag; a bucket deleted and re-created gets its
   objects again;
7. level paths and member names read from the bucket are never trusted: ``recover``
   refuses (or skips) a crafted year index or manifest, and ``restore --from-archive``
   never writes outside the tree or the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from tests.helpers import (
    Workspace,
    assert_one_line_error,
    change_source,
    restored_source,
    snapshot,
)
from tests.s3.conftest import CREDENTIALS, archive_workspace, keys


def set_config(ws, old: str, new: str) -> None:
    text = ws.config.read_text()
    assert old in text
    ws.config.write_text(text.replace(old, new))


def add_big_file(ws) -> None:
    """6 MB that do not compress: the full's volume needs a bag of its own at 5 MiB bags."""
    (ws.source / "big.bin").write_bytes(
        b"".join(hashlib.sha256(f"big {i}".encode()).digest() for i in range(190_000)))
    os.utime(ws.source / "big.bin", (1_000_000_000, 1_000_000_000))


def get_json(s3, key: str):
    return json.loads(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())


def put_json(s3, key: str, data) -> None:
    s3.put_object(Bucket=s3.bucket, Key=key, Body=json.dumps(data).encode())


def restore_args(ws: Workspace, day: str, target: Path) -> tuple[str, ...]:
    """Restore arguments for the backup of ``day`` (at noon): from the tree if the tree
    holds it, else from the archive; asserts that one of them chooses exactly it."""
    args = ("restore", "--date", day, "--target", str(target))
    dry = ws.cya(*args, "--dry-run", check=False)
    if dry.returncode == 0 and f"as of {day} 12:00:00" in dry.stdout:
        return args
    args += ("--from-archive",)
    dry = ws.cya(*args, "--dry-run", check=False)
    assert dry.returncode == 0 and f"as of {day} 12:00:00" in dry.stdout, (day, dry)
    return args


def restores(ws: Workspace, day: str, expected: dict, out: Path) -> None:
    """The backup of ``day`` restores exactly, from the tree or (through a thaw) from
    the archive."""
    target = out / f"restored-{day}"
    args = restore_args(ws, day, target)
    for _ in range(3):
        result = ws.cya(*args, check=False)
        if result.returncode != 75:  # 75: a thaw was asked for; the same command again
            break
    assert result.returncode == 0, (day, result.stdout, result.stderr)
    assert snapshot(restored_source(target, ws.source)) == expected, day


# -- 3. a missing bag ------------------------------------------------------------------

def archived_2012(tmp_path: Path, s3) -> tuple[Workspace, dict]:
    """Backups on 2012-12-04 (a full with a 6 MB volume: a bag of its own) and
    2012-12-10, each sent off-site by its own run (cadence "backup"), then 2013-01-08,
    which records the finished year 2012; with keep_year = 1 the tree then lets go of
    the year 2012 (the decade level still holds the full)."""
    ws = archive_workspace(tmp_path, s3)
    set_config(ws, 'bag_size = "40GB"', 'bag_size = "5MiB"')
    set_config(ws, "# keep_year = 2", "keep_year = 1")
    states = {}
    for number, day in enumerate(["2012-12-04", "2012-12-10", "2013-01-08"]):
        change_source(ws.source, number)
        if number == 0:
            add_big_file(ws)
        ws.backup(f"{day}T12:00")
        states[day] = snapshot(ws.source)
    assert "years/2012.json" in keys(s3)
    assert not (ws.tree / "2000/2010/2012").exists()
    return ws, states


def bag_holding(s3, prefix: str) -> str:
    """The 2012 bag holding the volume whose name starts with ``prefix``."""
    for key in keys(s3, "manifests/2012/"):
        manifest = get_json(s3, key)
        if any(m["path"].rsplit("/", 1)[1].startswith(prefix) and ".vol1." in m["path"]
               for m in manifest["members"]):
            return manifest["bag"]
    raise AssertionError(f"no bag holds {prefix}*")


def test_a_missing_bag_is_uploaded_again_or_reported_and_nothing_more_is_lost(tmp_path, s3):
    ws, states = archived_2012(tmp_path, s3)
    with_full = bag_holding(s3, "duplicity-full.20121204T120000Z.")
    # each run's files go up in bags of their own: this one holds 2012-12-10's increment
    # and nothing the tree still has
    increment = bag_holding(s3, "duplicity-inc.20121204T120000Z.to.20121210T120000Z.")
    assert increment != with_full

    # the full's volume is still in the tree (decade level): its bag is made again
    s3.delete_object(Bucket=s3.bucket, Key=with_full)
    change_source(ws.source, 3)
    result = ws.backup("2013-01-09T12:00", check=False)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    states["2013-01-09"] = snapshot(ws.source)
    verify = ws.cya("archive", "verify", check=False)
    assert verify.returncode == 0, (verify.stdout, verify.stderr)
    # no record in the bucket still names the lost bag: each names only bags it holds
    assert_records_name_only_present_bags(s3)

    # 2012-12-10's increment lived only in the year 2012, which the tree let go of:
    # that loss is reported, loudly, by the next run and by status
    s3.delete_object(Bucket=s3.bucket, Key=increment)
    change_source(ws.source, 4)
    result = ws.backup("2013-01-10T12:00", check=False)
    states["2013-01-10"] = snapshot(ws.source)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "damaged" in line], result.stderr
    status = ws.cya("status", check=False)
    assert "damaged" in status.stdout + status.stderr, (status.stdout, status.stderr)

    # the next year reuses the decade's full: 2013 is archived and let go of only if
    # every object its chains need is really in the bucket
    change_source(ws.source, 5)
    result = ws.backup("2014-01-07T12:00", check=False)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    for day in ("2012-12-04", "2013-01-08", "2013-01-09", "2014-01-07"):
        restore_args(ws, day, tmp_path / "unused")  # still chosen, exactly
    restores(ws, "2013-01-10", states["2013-01-10"], tmp_path)  # the full and every 2013 link
    restores(ws, "2013-01-08", states["2013-01-08"], tmp_path)


def assert_records_name_only_present_bags(s3) -> None:
    """Every bag a backup or year record in the bucket names is in the bucket."""
    found = keys(s3)
    for key in [k for k in found if k.startswith(("backups/", "years/"))]:
        record = get_json(s3, key)
        entries = record["chain"] if key.startswith("backups/") else record["files"].values()
        missing = {entry["bag"] for entry in entries} - set(found)
        assert not missing, (key, missing)


def test_a_bucket_deleted_and_made_again_gets_every_object_again(tmp_path, s3):
    ws = archive_workspace(tmp_path, s3)
    for number, day in enumerate(["2012-12-04", "2012-12-10", "2013-01-08"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
    assert "years/2012.json" in keys(s3)
    for key in keys(s3):
        s3.delete_object(Bucket=s3.bucket, Key=key)
    s3.delete_bucket(Bucket=s3.bucket)
    s3.create_bucket(Bucket=s3.bucket)
    change_source(ws.source, 3)
    ws.backup("2014-01-07T12:00", "--no-archive", "--no-trim")
    ws.cya("archive")
    found = keys(s3)
    for year in ("2012", "2013"):
        assert f"years/{year}.json" in found, sorted(found)
        index = get_json(s3, f"years/{year}.json")
        bags = {entry["bag"] for entry in index["files"].values()}
        assert bags and bags <= set(found), sorted(bags - set(found))
    # every kept backup's record and file index, and the system copy, are there again
    status = json.loads(ws.cya("archive", "status", "--json").stdout)
    records = [k for k in found if k.startswith("backups/")]
    assert len(records) == status["backups"] >= 4, sorted(found)
    assert len([k for k in found if k.startswith("indexes/")]) == len(records)
    assert {"system/catalog.sqlite", "system/config.toml.gpg", "system/setup.json"} <= set(found)
    assert_records_name_only_present_bags(s3)
    verify = ws.cya("archive", "verify", check=False)
    assert verify.returncode == 0, (verify.stdout, verify.stderr)


# -- 7. paths read from the bucket -----------------------------------------------------

@pytest.fixture(scope="module")
def archived(tmp_path_factory, moto_endpoint):
    """2012-12-04 and 2013-01-08: the year 2012 in the bucket."""
    import boto3

    os.environ.update(CREDENTIALS)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.bucket, s3.endpoint = f"cya-crafted-{secrets.token_hex(6)}", moto_endpoint
    s3.create_bucket(Bucket=s3.bucket)
    ws = archive_workspace(tmp_path_factory.mktemp("crafted"), s3)
    states = {}
    for number, day in enumerate(["2012-12-04", "2013-01-08"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
        states[day] = snapshot(ws.source)
    assert "years/2012.json" in keys(s3)
    return ws, s3, states


def crafted_index(s3, level: str, year: str) -> None:
    """A year index whose level ``level`` holds the year 2012's own full backup."""
    index = get_json(s3, "years/2012.json")
    files = {f"{level}/files/{path.rsplit('/', 1)[1]}": entry
             for path, entry in index["files"].items()
             if path.startswith("2000/2010/2012/files/")}
    assert files
    put_json(s3, "years/2011.json", {**index, "year": year, "files": files})


@pytest.mark.parametrize("case", ["index level with ..", "absolute index level",
                                  "manifest member with .."])
def test_crafted_paths_in_the_bucket_are_refused_and_never_written_outside(
        archived, tmp_path, case):
    ws, s3, states = archived
    new = Workspace(tmp_path / "new-machine")
    new.env.update(CREDENTIALS)
    outside = new.base / "outside"  # four levels above the tree's fetch directory
    restore_key, restore_body, added = None, None, []
    # ``bad``: what the refusal or warning names (the level path, or the index's year)
    if case == "index level with ..":
        bad = "../../.."
        crafted_index(s3, "../../../../outside", "../../..")
        added.append("years/2011.json")
    elif case == "absolute index level":
        outside = Path(f"/tmp/cya-crafted-{secrets.token_hex(6)}")
        bad = str(outside)
        crafted_index(s3, f"{outside}/a/b", str(outside))
        added.append("years/2011.json")
    else:
        bad = "../../.."
        restore_key = next(iter(keys(s3, "manifests/2012/")))
        restore_body = get_json(s3, restore_key)
        manifest = json.loads(json.dumps(restore_body))
        member = manifest["members"][0]
        member["path"] = f"../../../../outside/files/{member['path'].rsplit('/', 1)[1]}"
        put_json(s3, restore_key, manifest)
        catalog = s3.get_object(Bucket=s3.bucket, Key="system/catalog.sqlite")["Body"].read()
        s3.delete_object(Bucket=s3.bucket, Key="system/catalog.sqlite")
    try:
        result = new.cya("recover", "--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
                         "--tree", str(new.tree), "--passphrase-file",
                         str(ws.passphrase_file), check=False)
        if result.returncode != 0:  # refused: one line naming the bad path
            assert_one_line_error(result, 1, bad)
        else:  # or skipped, with a warning naming it
            assert [line for line in result.stderr.splitlines()
                    if "warning" in line and bad in line], (result.stdout, result.stderr)
            target = tmp_path / "restored"
            args = ("restore", "--date", "2012-12-04", "--target", str(target),
                    "--from-archive")
            for _ in range(3):
                restored = new.cya(*args, check=False)
                if restored.returncode != 75:
                    break
            assert not outside.exists(), "restore --from-archive wrote outside the tree"
            assert "Traceback" not in restored.stderr
            if case.startswith("manifest"):  # that bag skipped: 2012 may not restore
                assert restored.returncode in (0, 1), restored
            else:  # the crafted year skipped: the real one restores
                assert restored.returncode == 0, (restored.stdout, restored.stderr)
                assert snapshot(restored_source(target, ws.source)) == states["2012-12-04"]
        assert not outside.exists()
    finally:
        for key in added:
            s3.delete_object(Bucket=s3.bucket, Key=key)
        if restore_key is not None:
            put_json(s3, restore_key, restore_body)
            s3.put_object(Bucket=s3.bucket, Key="system/catalog.sqlite", Body=catalog)
        if outside.is_absolute() and str(outside).startswith("/tmp/cya-crafted-"):
            shutil.rmtree(outside, ignore_errors=True)
