"""Issue 13, items 8 and 10 (its S3 half), against moto_server.

8. ``cya archive verify`` reads what it checks: a manifest that is not JSON, or whose
   members' SHA-256 were all zeroed, fails verify (exit 1, naming it); an upload begun
   under the prefix and never completed is listed.
10. ``cya -vv archive`` never prints the session token or the access key id.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import change_source
from tests.s3.conftest import CREDENTIALS, archive_workspace, keys


@pytest.fixture(scope="module")
def archived(tmp_path_factory, moto_endpoint):
    """Year 2012 archived (by the backup of 2013-01-08) in a bucket of the module's own."""
    import boto3

    os.environ.update(CREDENTIALS)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.bucket, s3.endpoint = f"cya-verify-{os.urandom(4).hex()}", moto_endpoint
    s3.create_bucket(Bucket=s3.bucket)
    ws = archive_workspace(tmp_path_factory.mktemp("archived"), s3)
    for number, day in enumerate(["2012-12-04", "2012-12-10", "2013-01-08"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
    assert "every recorded object is present and matches" in ws.cya("archive", "verify").stdout
    return ws, s3


def _zeroed(data: bytes) -> bytes:
    manifest = json.loads(data)
    assert manifest["members"]
    for member in manifest["members"]:
        member["sha256"] = "0" * 64
    return json.dumps(manifest).encode()


@pytest.mark.parametrize("fault", ["manifest-not-json", "manifest-sha256-zeroed",
                                   "unfinished-upload"])
def test_archive_verify_reads_what_it_checks(archived, fault):
    ws, s3 = archived
    manifest = sorted(keys(s3, "manifests/"))[0]
    original = s3.get_object(Bucket=s3.bucket, Key=manifest)["Body"].read()
    upload = None
    try:
        if fault == "manifest-not-json":
            s3.put_object(Bucket=s3.bucket, Key=manifest, Body=b"{not json")
        elif fault == "manifest-sha256-zeroed":
            s3.put_object(Bucket=s3.bucket, Key=manifest, Body=_zeroed(original))
        else:
            upload = s3.create_multipart_upload(Bucket=s3.bucket, Key="bags/2012/unfinished.tar",
                                                StorageClass="DEEP_ARCHIVE")
        result = ws.cya("archive", "verify", check=False)
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        if upload is None:
            assert result.returncode == 1, output
            assert manifest in output, output
            assert "every recorded object is present and matches" not in output
        else:
            assert "bags/2012/unfinished.tar" in output, output
    finally:
        s3.put_object(Bucket=s3.bucket, Key=manifest, Body=original)
        if upload is not None:
            s3.abort_multipart_upload(Bucket=s3.bucket, Key=upload["Key"],
                                      UploadId=upload["UploadId"])
    assert "every recorded object is present and matches" in ws.cya("archive", "verify").stdout


def test_vv_never_prints_aws_credentials(tmp_path, s3):
    ws = archive_workspace(tmp_path, s3)
    token, key_id = "some-token-value", CREDENTIALS["AWS_ACCESS_KEY_ID"]
    ws.env["AWS_SESSION_TOKEN"] = token
    for number, day in enumerate(["2012-12-04", "2013-01-08"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00", "--no-archive")
    assert key_id not in str(tmp_path) + s3.bucket + s3.endpoint  # a leak would be ours
    result = ws.cya("-vv", "archive")
    output = result.stdout + result.stderr
    assert "year(s) 2000/2010/2012" in output  # the finished year is recorded
    assert "PutObject" in output or "put_object" in output or "UploadPart" in output \
        or "Sending http request" in output, "no request was logged at -vv"
    assert token not in output
    assert key_id not in output
