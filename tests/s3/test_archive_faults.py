"""The archive when things go wrong: a run killed between its steps, an unreachable or
missing bucket, a damaged bag, a multipart upload of many parts checked end to end."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from cya.archive.s3 import Remote, StreamingUpload
from cya.config import Archive
from tests.helpers import assert_one_line_error, change_source, tree_state
from tests.s3.conftest import archive_workspace, free_port, keys


def three_backups(ws) -> None:
    """2012-12-04, 2012-12-10 and 2013-01-08 (which finishes 2012), not archived yet."""
    for number, day in enumerate(["2012-12-04", "2012-12-10", "2013-01-08"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00", "--no-archive")


def set_config(ws, old: str, new: str) -> None:
    text = ws.config.read_text()
    assert old in text
    ws.config.write_text(text.replace(old, new))


def test_a_run_killed_at_each_step_is_finished_without_a_second_copy(tmp_path, s3):
    """Killed after the bag, after its manifest, after a backup's record, after the
    year's record: each rerun finishes what the last one began, and in the end the bucket
    holds one copy of everything."""
    ws = archive_workspace(tmp_path, s3)
    three_backups(ws)
    seen = []
    for point in ["after-bag-upload", "after-bag-manifest", "after-backup-record",
                  "after-year-index"]:
        killed = ws.cya("archive", check=False, env={"CYA_CRASH_AT": point})
        assert killed.returncode == 137, (point, killed.stdout, killed.stderr)
        seen.append(sorted({k.split("/")[0] for k in keys(s3)}))
    assert seen == [["bags"], ["bags", "manifests"],
                    ["backups", "bags", "indexes", "manifests"],
                    ["backups", "bags", "indexes", "manifests", "years"]]
    ws.cya("archive")
    found = keys(s3)
    bags = [k for k in found if k.startswith("bags/")]
    assert len(bags) == 1 and len([k for k in found if k.startswith("manifests/")]) == 1
    records = sorted(k for k in found if k.startswith("backups/"))
    expected = ["20121204T120000Z", "20121210T120000Z", "20130108T120000Z"]
    assert records == [f"backups/{time}.json" for time in expected]
    assert sorted(k for k in found if k.startswith("indexes/")) == \
        [f"indexes/{time}.gpg" for time in expected]
    assert "years/2012.json" in found
    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert "every recorded object is present" in ws.cya("archive", "verify").stdout
    again = ws.cya("archive")
    assert "the bucket holds everything due" in again.stdout
    assert keys(s3).keys() - {"system/catalog.sqlite"} == found.keys() - {
        "system/catalog.sqlite"}
    assert [k for k in keys(s3) if k.startswith("bags/")] == bags


def test_unreachable_or_missing_bucket_keeps_the_backup(tmp_path, s3):
    """With cadence "year" (only finished years go off-site, as earlier versions did)
    and one year kept in the tree: a finished year the bucket could not take stays in
    the tree whole, and goes once the bucket is back."""
    ws = archive_workspace(tmp_path, s3)
    set_config(ws, 'cadence = "backup"', 'cadence = "year"')
    set_config(ws, "# keep_year = 2", "keep_year = 1")
    for number, day in enumerate(["2012-12-04", "2012-12-10"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
    assert not keys(s3, "bags/")  # no year has ended yet
    text = ws.config.read_text()
    ws.config.write_text(text.replace(s3.endpoint, f"http://127.0.0.1:{free_port()}"))
    change_source(ws.source, 2)
    result = ws.backup("2013-01-08T12:00", check=False)
    assert result.returncode == 1
    assert "backed up 2013-01-08 12:00:00" in result.stdout
    warning = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and "archiving failed" in warning[0] \
        and "cannot reach the bucket" in warning[0], result.stderr
    assert "Traceback" not in result.stderr
    # the finished year is kept whole until it is archived (keep_year = 1 would drop it)
    assert (ws.tree / "2000/2010/2012").is_dir()
    before = tree_state(ws.tree)
    assert_one_line_error(ws.cya("archive", check=False), 1, "cannot reach the bucket")
    trimmed = ws.cya("trim", check=False)  # nor does a trim let go of it, and it says why
    assert trimmed.returncode == 1 and "nothing to trim" in trimmed.stdout
    assert "the bucket could not be checked" in trimmed.stderr
    ws.config.write_text(text.replace(s3.bucket, "cya-no-such-bucket"))
    assert_one_line_error(ws.cya("archive", check=False), 1,
                          "bucket cya-no-such-bucket does not exist", "cya archive setup")
    assert tree_state(ws.tree) == before
    ws.config.write_text(text)
    assert "year(s) 2000/2010/2012" in ws.cya("archive").stdout
    found = keys(s3)
    assert "years/2012.json" in found and keys(s3, "bags/2013/")
    assert "backups/20130108T120000Z.json" not in found  # 2013 has not ended
    # now the bucket holds the year, the trim lets go of it
    assert "deleted 2000/2010/2012" in ws.cya("trim").stdout


def test_archive_without_a_bucket_is_a_usage_error(ws):
    assert_one_line_error(ws.cya("archive", check=False), 2, "archiving is off")


def test_a_damaged_bag_fails_the_restore_and_leaves_the_target(tmp_path, s3):
    ws = archive_workspace(tmp_path, s3)
    three_backups(ws)
    ws.cya("archive")
    bag = next(k for k in keys(s3) if k.startswith("bags/"))
    manifest = json.loads(s3.get_object(Bucket=s3.bucket,
                                        Key=bag.replace("bags/", "manifests/")
                                        .replace(".tar", ".json"))["Body"].read())
    s3.restore_object(Bucket=s3.bucket, Key=bag,
                      RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}})
    data = bytearray(s3.get_object(Bucket=s3.bucket, Key=bag)["Body"].read())
    volume = next(m for m in manifest["members"] if ".vol1." in m["path"])
    data[volume["offset"] + 100] ^= 0xFF  # one bit-flipped byte inside a volume
    s3.put_object(Bucket=s3.bucket, Key=bag, Body=bytes(data))  # readable, same length
    target = tmp_path / "restored"
    result = ws.cya("restore", "--date", "2012-12-10", "--target", str(target),
                    "--from-archive", check=False)
    assert_one_line_error(result, 1, "SHA-256", "damaged")
    assert not target.exists()
    assert not list((ws.tree / ".cya" / "staging").iterdir())


@pytest.mark.parametrize("size", [0, 5 * 2**20 * 3 + 12345])
def test_streaming_upload_of_many_parts(s3, size):
    """StreamingUpload through boto3 to the server: parts, checksum, storage class."""
    remote = Remote(Archive(bucket=s3.bucket, endpoint_url=s3.endpoint,
                            storage_class="STANDARD"), in_flight=2)
    data = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(size // 32 + 1))
    data = data[:size]
    upload = StreamingUpload(remote, "test/object", 5 * 2**20, {"cya-digest": "x"})
    for start in range(0, len(data), 1_000_003):
        upload.write(data[start:start + 1_000_003])
    sent = upload.close()
    assert sent.size == size and sent.parts == max(1, -(-size // (5 * 2**20)))
    assert s3.get_object(Bucket=s3.bucket, Key="test/object")["Body"].read() == data
    head = s3.head_object(Bucket=s3.bucket, Key="test/object", ChecksumMode="ENABLED")
    assert head["Metadata"]["cya-digest"] == "x"
    assert head["ChecksumSHA256"].split("-")[0] == sent.checksum.split("-")[0]


def test_bag_is_a_plain_tar(tmp_path):
    """write_bag on its own: offsets point at the data, links are hard-link members."""
    from cya.archive.bags import write_bag
    from cya.core.bagging import YearFile, plan_bags

    for level in ("2000/2010/2012", "2000/2010/2012/2012-12"):
        (tmp_path / level / "files").mkdir(parents=True)
    name = "duplicity-full.20121204T120000Z.vol1.difftar.gpg"
    (tmp_path / "2000/2010/2012/files" / name).write_bytes(b"x" * 1000)
    (tmp_path / "2000/2010/2012/2012-12/files" / name).hardlink_to(
        tmp_path / "2000/2010/2012/files" / name)
    files = [YearFile(f"{level}/files/{name}", 1000)
             for level in ("2000/2010/2012", "2000/2010/2012/2012-12")]
    bag = plan_bags("2000/2010/2012", files, {}, 10**9).bags[0]
    out = io.BytesIO()
    members = write_bag(bag, tmp_path, out)
    data = out.getvalue()
    assert data[members[0].offset:members[0].offset + 1000] == b"x" * 1000
    assert members[0].sha256 == hashlib.sha256(b"x" * 1000).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (other,) = members[0].links
        link = tar.getmember(other)
        assert link.islnk() and link.linkname == members[0].path
        assert {members[0].path, other} == {f.path for f in files}
    again = io.BytesIO()
    write_bag(bag, tmp_path, again)
    assert again.getvalue() == data  # deterministic: a rerun sends the same bytes


def test_prune_keeps_what_kept_points_need_and_waits_out_the_minimum_days(tmp_path, s3):
    """keep_years = 1 and the tree's keep = 2: 2014-01-07 finishes 2013, so the year 2012
    leaves the remote retention at once (the tree still holds its backups, so their bags
    stay); once the tree let go of 2012, the backup of 2012-12-10 goes too, and the bags
    of its run (needed by no kept point) wait out min_age_days before they are deleted.
    Ages count from the real time S3 confirmed each upload: ``--now`` ahead of it ages
    them."""
    from datetime import UTC, datetime, timedelta

    from tests.s3.test_archive import add_big_file

    ws = archive_workspace(tmp_path, s3)
    set_config(ws, 'bag_size = "40GB"', 'bag_size = "5MiB"')
    set_config(ws, "keep_years = 0", "keep_years = 1")
    for number, day in enumerate(["2012-12-04", "2012-12-10", "2013-01-08", "2014-01-07"]):
        change_source(ws.source, number)
        if number == 0:
            add_big_file(ws, 0)  # the decade's full: a bag of its own, needed by 2013 too
        if number == 1:
            (ws.source / "only-2012.bin").write_bytes(  # an incremental of 2012 alone
                b"".join(hashlib.sha256(f"x{i}".encode()).digest() for i in range(190_000)))
        ws.backup(f"{day}T12:00")
    before = keys(s3)
    assert "years/2012.json" not in before and "years/2013.json" in before
    assert "backups/20121210T120000Z.json" in before  # the tree held it then
    members = {}
    for key in before:
        if key.startswith("manifests/"):
            manifest = json.loads(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
            members[manifest["bag"]] = [m["path"].rsplit("/", 1)[1]
                                        for m in manifest["members"]]
    # the bags of 2012-12-10's run: that increment's files and nothing else
    alone = sorted(bag for bag, names in members.items()
                   if all(".to.20121210T120000Z." in name for name in names))
    assert len(alone) == 2, members  # the 6 MB volume, and its manifest and signatures

    soon = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = json.loads(ws.cya("--now", soon, "archive", "prune", "--json").stdout)
    assert [d["point"] for d in plan["drop"]] == ["backup 20121210T120000Z"]
    assert plan["delete"] == []  # nothing younger than min_age_days
    assert sorted(d["key"] for d in plan["defer"]) == alone
    assert all(160 < d["days_left"] <= 170 for d in plan["defer"])
    assert plan["early_deletion_avoided_usd"] >= 0 and not plan["applied"]
    assert keys(s3).keys() == before.keys()  # a plan deletes nothing

    ws.cya("--now", soon, "archive", "prune", "--yes")
    after = keys(s3)
    # the point's own records go at once; bags wait out the 180 days
    assert {"backups/20121210T120000Z.json", "indexes/20121210T120000Z.gpg"} & \
        set(after) == set()
    assert all(bag in after for bag in members)
    ws.cya("--now", later, "archive", "prune", "--yes")
    final = keys(s3)
    assert not any(bag in final or bag.replace("bags/", "manifests/")
                   .replace(".tar", ".json") in final for bag in alone)
    assert all(bag in final for bag in members if bag not in alone)
    # every kept record names only bags that are still there
    for key in [k for k in final if k.startswith(("backups/", "years/"))]:
        record = json.loads(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
        entries = record["chain"] if key.startswith("backups/") else record["files"].values()
        assert {entry["bag"] for entry in entries} <= set(final), key
    assert "every recorded object is present" in ws.cya("archive", "verify").stdout
    status = json.loads(ws.cya("archive", "status", "--json").stdout)
    assert [y["year"] for y in status["years"]] == ["2000/2010/2013"]
    # 2013 still restores from the archive, its chain whole (the decade's full was kept)
    dry = ws.cya("restore", "--date", "2013-01-08", "--target", str(tmp_path / "t"),
                 "--from-archive", "--dry-run")
    assert "as of 2013-01-08 12:00:00" in dry.stdout
    # a pruned point is never sent again: nothing is due
    assert "the bucket holds everything due" in ws.cya("archive").stdout
    assert {k for k in keys(s3) if k.startswith("bags/")} == \
        {k for k in final if k.startswith("bags/")}
