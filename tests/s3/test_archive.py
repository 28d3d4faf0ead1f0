"""The archive against a real S3-protocol server (moto_server over HTTP), with the
default cadence: every backup's new files bagged into Deep Archive by its own run, with
a record of its whole chain; finished years recorded; the decade's full stored once;
``tar -x`` giving back the levels; a trimmed year restored from the archive through a
thaw, SHA-256 checked; ``recover`` on a new machine."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import subprocess
import tarfile

import pytest

from tests.helpers import change_source, restored_source, snapshot
from tests.s3.conftest import archive_workspace, keys, set_thaw_pending

DAYS = ["2012-12-04", "2012-12-10", "2013-01-08", "2013-02-05", "2014-01-07", "2015-01-06"]


def set_config(ws, old: str, new: str) -> None:
    text = ws.config.read_text()
    assert old in text
    ws.config.write_text(text.replace(old, new))


def add_big_file(ws, day: int) -> None:
    """6 MB that do not compress: the full backup needs a bag of its own at 5 MiB bags."""
    (ws.source / "big.bin").write_bytes(
        b"".join(hashlib.sha256(f"{day} {i}".encode()).digest() for i in range(190_000)))
    os.utime(ws.source / "big.bin", (1_000_000_000, 1_000_000_000))


def record_key(day: str) -> str:
    return f"backups/{day.replace('-', '')}T120000Z.json"


@pytest.fixture(scope="module")
def archived(tmp_path_factory, moto_endpoint):
    """Six backups over four years with a bucket configured (5 MiB bags): each run sends
    its new files and the record of its backup; each new year's first backup records the
    year before it, and the trim then drops 2012 and 2013."""
    import boto3

    from tests.s3.conftest import CREDENTIALS

    os.environ.update(CREDENTIALS)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.bucket, s3.endpoint = "cya-archive-scenario", moto_endpoint
    s3.create_bucket(Bucket=s3.bucket)
    ws = archive_workspace(tmp_path_factory.mktemp("archived"), s3)
    set_config(ws, 'bag_size = "40GB"', 'bag_size = "5MiB"')
    states, outputs, bags = {}, {}, {}
    for number, day in enumerate(DAYS):
        change_source(ws.source, number)
        if number == 0:
            add_big_file(ws, number)
        outputs[day] = ws.backup(f"{day}T12:00").stdout
        states[day] = snapshot(ws.source)
        found = keys(s3)
        assert record_key(day) in found, (day, sorted(found))  # off-site the same run
        bags[day] = {k for k in found if k.startswith("bags/")}
    return ws, s3, states, outputs, bags


def manifests(s3) -> list[dict]:
    return [json.loads(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
            for key in keys(s3, "manifests/")]


def test_every_backup_goes_to_deep_archive_in_its_own_run(archived):
    ws, s3, _, outputs, bags_after = archived
    for day in DAYS:  # each run sent a bag of its own and recorded its backup
        assert "archived 1 bag(s)" in outputs[day] or day == DAYS[0], outputs[day]
        assert "1 backup record(s)" in outputs[day], outputs[day]
    for earlier, later in itertools.pairwise(DAYS):
        assert bags_after[earlier] < bags_after[later]  # new bags; none sent again
    # finished years are still recorded as the tree held them
    assert "year(s) 2000/2010/2012" in outputs["2013-01-08"]
    assert "year(s) 2000/2010/2013" in outputs["2014-01-07"]
    assert "year(s) 2000/2010/2014" in outputs["2015-01-06"]
    found = keys(s3)
    bags = [k for k in found if k.startswith("bags/")]
    assert {k.split("/")[1] for k in bags} == {"2012", "2013", "2014", "2015"}
    assert len([k for k in bags if k.startswith("bags/2012/")]) >= 3  # 5 MiB bags
    assert {"years/2012.json", "years/2013.json", "years/2014.json", "system/catalog.sqlite",
            "system/config.toml.gpg", "system/setup.json", record_key(DAYS[-1])} <= set(found)
    assert "system/config.toml" not in found  # the config names the sources: encrypted
    for key, item in found.items():
        assert item["StorageClass"] == ("DEEP_ARCHIVE" if key.startswith("bags/") else "STANDARD")
    # Deep Archive: no GET before a thaw
    with pytest.raises(s3.exceptions.ClientError, match="InvalidObjectState"):
        s3.get_object(Bucket=s3.bucket, Key=bags[0])
    # the trim dropped the archived years it no longer keeps; 2014 and 2015 stay
    years = sorted(p.name for p in (ws.tree / "2000" / "2010").iterdir() if p.name != "files")
    assert years == ["2014", "2015"]
    # the system copy holds no file names of the user's (no file index)
    catalog = found["system/catalog.sqlite"]
    assert catalog["Size"] > 0
    data = s3.get_object(Bucket=s3.bucket, Key="system/catalog.sqlite")["Body"].read()
    assert b"journal.txt" not in data and b"docs/note" not in data


def test_every_duplicity_file_is_stored_once(archived):
    _, s3, _, _, _ = archived
    names = [m["path"].rsplit("/", 1)[1] for manifest in manifests(s3)
             for m in manifest["members"]]
    assert len(names) == len(set(names))
    # the decade's full sits at the root of 2013's chain but was stored with 2012
    index_2013 = json.loads(s3.get_object(Bucket=s3.bucket, Key="years/2013.json")["Body"].read())
    full = [path for path in index_2013["files"] if "/2013/files/duplicity-full." in path]
    assert full and all(index_2013["files"][p]["bag"].startswith("bags/2012/") for p in full)
    # and at the root of the newest backup's chain, whose record says where each file is
    record = json.loads(s3.get_object(Bucket=s3.bucket, Key=record_key(DAYS[-1]))["Body"]
                        .read())
    members = {(m["path"], m["offset"], m["size"], m["sha256"])
               for manifest in manifests(s3) for m in manifest["members"]}
    assert {(f["member"], f["offset"], f["size"], f["sha256"]) for f in record["chain"]} \
        <= members
    assert any(f["bag"].startswith("bags/2012/") for f in record["chain"]
               if f["name"].startswith("duplicity-full."))


def test_tar_x_of_a_bag_gives_back_the_levels(archived, tmp_path):
    _, s3, _, _, _ = archived
    # the first backup's manifest and signatures: in every level of the tree at once
    manifest = next(m for m in manifests(s3) if m["year"] == "2012" and len(m["members"]) > 1
                    and all("/duplicity-full" in f["path"] for f in m["members"]))
    assert all(len(m["links"]) == 4 for m in manifest["members"])
    s3.restore_object(Bucket=s3.bucket, Key=manifest["bag"],
                      RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}})
    data = s3.get_object(Bucket=s3.bucket, Key=manifest["bag"])["Body"].read()
    assert len(data) == manifest["size"]
    (tmp_path / "bag.tar").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-x", "-f", str(tmp_path / "bag.tar"), "-C", str(out)], check=True)
    for member in manifest["members"]:
        path = out / member["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == member["sha256"]
        assert data[member["offset"]:member["offset"] + member["size"]] == path.read_bytes()
        for link in member["links"]:  # the same file in other levels: one inode
            assert (out / link).stat().st_ino == path.stat().st_ino
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert all(m.uid == 0 and m.mode == 0o600 for m in tar.getmembers())


def test_a_trimmed_year_restores_from_the_archive_through_a_thaw(archived, tmp_path):
    ws, s3, states, _, _ = archived
    target = tmp_path / "restored"
    # the tree alone restores only the decade's full of 2012-12-04, and says the archive
    # holds the asked day
    local = ws.cya("restore", "--date", "2012-12-10", "--target", str(target), "--dry-run")
    assert "restored 2012-12-04 12:00:00 UTC — 6 days earlier" in local.stdout
    assert "the archive holds 2012-12-10 12:00:00 UTC, nearer: add --from-archive" in local.stdout

    args = ("restore", "--date", "2012-12-10", "--target", str(target), "--from-archive")
    dry = ws.cya(*args, "--dry-run")
    # the full's 6 MB volume has a bag of its own, its manifest and signatures another,
    # and 2012-12-10's increment went up in its own run
    assert "thaw 3 bag(s)" in dry.stdout
    set_thaw_pending(s3.endpoint, 4)  # S3 says a thaw is still going: two HEADs each
    try:
        first = ws.cya(*args, check=False)
        assert first.returncode == 75, first.stderr
        assert "asked S3 to thaw" in first.stdout
        assert "run the same command again" in first.stderr
        assert not target.exists()
        second = ws.cya(*args, check=False)  # remembered: nothing asked again
    finally:
        set_thaw_pending(s3.endpoint, None)
    assert second.returncode == 75 and "asked S3" not in second.stdout, second
    third = ws.cya(*args)
    assert "every SHA-256 verified" in third.stdout
    assert snapshot(restored_source(target, ws.source)) == states["2012-12-10"]
    assert not list((ws.tree / ".cya" / "staging").iterdir())


def test_archive_verify_finds_a_missing_object(archived):
    ws, s3, _, _, _ = archived
    good = ws.cya("archive", "verify")
    assert "every recorded object is present and matches" in good.stdout
    index = s3.get_object(Bucket=s3.bucket, Key="years/2014.json")["Body"].read()
    s3.delete_object(Bucket=s3.bucket, Key="years/2014.json")
    try:
        bad = ws.cya("archive", "verify", check=False)
        assert bad.returncode == 1 and "years/2014.json is missing" in bad.stderr
    finally:
        s3.put_object(Bucket=s3.bucket, Key="years/2014.json", Body=index)
    status = json.loads(ws.cya("archive", "status", "--json").stdout)
    assert [y["year"] for y in status["years"]] == ["2000/2010/2012", "2000/2010/2013",
                                                    "2000/2010/2014"]
    assert status["bags"] == len(keys(s3, "bags/")) and status["damaged"] == []
    assert status["backups"] == len(keys(s3, "backups/"))
    assert status["newest"].startswith("2015-01-06T12:00:00")


def test_recover_rebuilds_config_and_catalog_from_the_bucket(archived, tmp_path):
    """The machine is lost: with the bucket and the passphrase, a new machine restores."""
    ws, s3, states, _, _ = archived
    from tests.helpers import Workspace
    from tests.s3.conftest import CREDENTIALS

    new = Workspace(tmp_path / "new-machine")
    new.env.update(CREDENTIALS)
    args = ("recover", "--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
            "--tree", str(new.tree))
    # the config copy is encrypted: without the passphrase nothing is written
    refused = new.cya(*args, check=False)
    assert refused.returncode == 2 and "--passphrase-file" in refused.stderr, refused
    assert not new.config.exists() and not new.tree.exists()
    args += ("--passphrase-file", str(ws.passphrase_file))
    result = new.cya(*args)
    assert "newest 20150106T120000Z, and 3 finished year(s) (from the catalog copy in " \
           "system/)" in result.stdout, result.stdout
    assert oct(new.config.stat().st_mode & 0o777) == "0o600"
    assert f"sources = [\"{ws.source}\"]" in new.config.read_text()  # decrypted
    status = json.loads(new.cya("archive", "status", "--json").stdout)
    assert [y["year"] for y in status["years"]] == ["2000/2010/2012", "2000/2010/2013",
                                                    "2000/2010/2014"]
    target = tmp_path / "restored"
    # a store that thaws at once (moto) goes straight through: asked, looked at again
    restore = new.cya("restore", "--date", "2013-02-05", "--target", str(target),
                      "--from-archive")
    assert "asked S3 to thaw" in restore.stdout and "every SHA-256 verified" in restore.stdout
    assert snapshot(restored_source(target, ws.source)) == states["2013-02-05"]
    # a second recover refuses to overwrite, and without the catalog copy the records
    # and manifests give the same archive
    again = new.cya(*args, check=False)
    assert again.returncode == 2 and "exists" in again.stderr
    copy = s3.get_object(Bucket=s3.bucket, Key="system/catalog.sqlite")["Body"].read()
    s3.delete_object(Bucket=s3.bucket, Key="system/catalog.sqlite")
    try:
        third = Workspace(tmp_path / "third-machine")
        third.env.update(CREDENTIALS)
        kept = third.base / "my-copy-of-the-passphrase"
        kept.write_bytes(ws.passphrase_file.read_bytes())
        kept.chmod(0o600)
        result = third.cya("recover", "--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
                           "--tree", str(third.tree), "--passphrase-file", str(kept))
        assert "3 finished year(s) (from the records)" in result.stdout, result.stdout
        assert f"passphrase_file = \"{kept}\"" in third.config.read_text()
        assert json.loads(third.cya("archive", "status", "--json").stdout)["backups"] == \
            status["backups"]
        dry = third.cya("restore", "--date", "2012-12-10", "--target", str(tmp_path / "t3"),
                        "--from-archive", "--dry-run")
        assert "as of 2012-12-10 12:00:00" in dry.stdout
    finally:
        s3.put_object(Bucket=s3.bucket, Key="system/catalog.sqlite", Body=copy)
