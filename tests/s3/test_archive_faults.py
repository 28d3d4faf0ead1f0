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


def test_a_run_killed_at_each_step_is_finished_without_a_second_copy(tmp_path, s3):
    ws = archive_workspace(tmp_path, s3)
    three_backups(ws)
    seen = []
    for point in ["after-bag-upload", "after-bag-manifest", "after-year-index"]:
        killed = ws.cya("archive", check=False, env={"CYA_CRASH_AT": point})
        assert killed.returncode == 137, (point, killed.stdout, killed.stderr)
        seen.append(sorted(k.split("/")[0] for k in keys(s3)))
    assert seen == [["bags"], ["bags", "manifests"], ["bags", "manifests", "years"]]
    final = ws.cya("archive")
    assert "archived 2000/2010/2012" in final.stdout
    bags = [k for k in keys(s3) if k.startswith("bags/")]
    assert len(bags) == 1
    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert "every recorded object is present" in ws.cya("archive", "verify").stdout
    again = ws.cya("archive")
    assert "no finished year awaits the archive" in again.stdout
    assert [k for k in keys(s3) if k.startswith("bags/")] == bags


def test_unreachable_or_missing_bucket_keeps_the_backup(tmp_path, s3):
    ws = archive_workspace(tmp_path, s3)
    for number, day in enumerate(["2012-12-04", "2012-12-10"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
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
    # the finished year is kept whole until it is archived
    assert (ws.tree / "2000/2010/2012").is_dir()
    before = tree_state(ws.tree)
    assert_one_line_error(ws.cya("archive", check=False), 1, "cannot reach the bucket")
    ws.config.write_text(text.replace(s3.bucket, "cya-no-such-bucket"))
    assert_one_line_error(ws.cya("archive", check=False), 1,
                          "bucket cya-no-such-bucket does not exist", "cya archive setup")
    assert tree_state(ws.tree) == before
    ws.config.write_text(text)
    assert "archived 2000/2010/2012" in ws.cya("archive").stdout


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


def test_prune_keeps_what_kept_years_need_and_waits_out_the_minimum_days(tmp_path, s3):
    from datetime import UTC, datetime, timedelta

    from tests.s3.test_archive import add_big_file, set_config

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
    needs = {}
    for key in before:
        if key.startswith("manifests/2012/"):
            manifest = json.loads(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
            needs[manifest["bag"]] = [m["path"] for m in manifest["members"]]
    index = json.loads(s3.get_object(Bucket=s3.bucket, Key="years/2013.json")["Body"].read())
    used_by_2013 = {entry["name"] for entry in index["files"].values()}
    alone = [bag for bag, paths in needs.items()
             if not {p.rsplit("/", 1)[1] for p in paths} & used_by_2013]
    assert alone and len(alone) < len(needs), needs  # a 2012 bag no file of 2013 needs

    soon = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = json.loads(ws.cya("--now", soon, "archive", "prune", "--json").stdout)
    assert plan["drop_years"] == ["2000/2010/2012"] and plan["delete"] == []
    assert sorted(d["key"] for d in plan["defer"]) == sorted(alone)
    assert plan["early_deletion_avoided_usd"] >= 0 and not plan["applied"]
    assert keys(s3).keys() == before.keys()  # a plan deletes nothing

    ws.cya("--now", soon, "archive", "prune", "--yes")
    after = keys(s3)
    assert "years/2012.json" not in after  # the year's index goes at once
    assert all(bag in after for bag in needs)  # bags wait out the 180 days
    ws.cya("--now", later, "archive", "prune", "--yes")
    final = keys(s3)
    assert not any(bag in final for bag in alone)
    assert all(bag in final for bag in needs if bag not in alone)
    assert "every recorded object is present" in ws.cya("archive", "verify").stdout
    status = json.loads(ws.cya("archive", "status", "--json").stdout)
    assert [y["year"] for y in status["years"]] == ["2000/2010/2013"]
    # 2013 still restores from the archive, its chain whole (the decade's full was kept)
    dry = ws.cya("restore", "--date", "2013-01-08", "--target", str(tmp_path / "t"),
                 "--from-archive", "--dry-run")
    assert "as of 2013-01-08 12:00:00" in dry.stdout
