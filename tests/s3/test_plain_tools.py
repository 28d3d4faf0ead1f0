"""Restoring with plain tools, proven (issue 9, item 8): ``contrib/restore-without-cya``
— boto3, the standard library and duplicity, no cya — restores from the bucket alone a
backup whose chain starts in an earlier year, byte for byte, after the machine is lost.

The scenario: a bucket with a prefix, backups on 2012-12-04 and 2012-12-10, then
2013-01-08 and 2013-01-09; the 2013 chain builds on the 2012 full, so the record of
2013-01-09 names a bag of 2012. Then the tree, the config, the caches and cya's own
state are removed; only the bucket and a copy of the passphrase file remain.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DUPLICITY, change_source, restored_source, snapshot
from tests.s3.conftest import CREDENTIALS, archive_workspace, keys, set_thaw_pending

DAYS = ["2012-12-04", "2012-12-10", "2013-01-08", "2013-01-09"]
PREFIX = "home/me"
SCRIPT = Path(__file__).resolve().parents[2] / "contrib" / "restore-without-cya"


@pytest.fixture(scope="module")
def lost(tmp_path_factory, moto_endpoint):
    """Four archived backups over two years in a prefixed bucket, then the machine
    lost: return (s3 client, source states by day, the source path, the passphrase
    file kept elsewhere, a scratch directory)."""
    import boto3

    os.environ.update(CREDENTIALS)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.bucket, s3.endpoint = "cya-plain-tools", moto_endpoint
    s3.create_bucket(Bucket=s3.bucket)
    base = tmp_path_factory.mktemp("plain")
    ws = archive_workspace(base / "machine", s3, "--prefix", PREFIX)
    states = {}
    for number, day in enumerate(DAYS):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
        states[day] = snapshot(ws.source)
    kept = base / "safe" / "passphrase"
    kept.parent.mkdir()
    shutil.copy(ws.passphrase_file, kept)
    kept.chmod(0o600)
    for gone in (ws.tree, ws.config.parent, ws.cache, ws.base / "xdg-config"):
        shutil.rmtree(gone, ignore_errors=True)
    return s3, states, ws.source, kept, base


def run_script(s3, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The script as a user runs it: its own process, no cya on the path, duplicity
    and python on PATH, credentials in the environment."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CYA_", "PYTHON"))}
    env.update(CREDENTIALS)
    env["PATH"] = f"{Path(DUPLICITY).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(cwd)
    env["TZ"] = "UTC"
    return subprocess.run([sys.executable, str(SCRIPT), "--bucket", s3.bucket, "--prefix",
                           PREFIX, "--endpoint-url", s3.endpoint, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def record(s3, time: str) -> dict:
    return json.loads(s3.get_object(Bucket=s3.bucket,
                                    Key=f"{PREFIX}/backups/{time}.json")["Body"].read())


def thawed(s3, key: str) -> bool:
    return "Restore" in s3.head_object(Bucket=s3.bucket, Key=key)


def test_the_script_needs_no_cya():
    """Only the standard library and boto3/botocore are imported (and it is executable)."""
    tree = ast.parse(SCRIPT.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - set(sys.stdlib_module_names) == {"boto3", "botocore"}
    assert os.access(SCRIPT, os.X_OK)


def test_a_backup_whose_chain_starts_a_year_earlier_restores_byte_for_byte(lost):
    s3, states, source, passphrase, base = lost
    newest = record(s3, "20130109T120000Z")
    assert newest["level"].startswith("2000/2010/2013/")
    assert ".20121204T120000Z." in newest["chain"][0]["name"]  # the full, of 2012
    assert newest["chain"][0]["bag"].startswith(f"{PREFIX}/bags/2012/")
    named = {entry["bag"] for entry in newest["chain"]}
    bags = [key for key in keys(s3, f"{PREFIX}/bags/")]
    assert set(bags) > named  # the 2012-12-10 increment's bag is not needed
    target = base / "restored-newest"
    set_thaw_pending(s3.endpoint, 2)  # every thaw says "ongoing" to its next 2 HEADs
    try:
        result = run_script(s3, "--date", "2013-01-09", "--target", str(target),
                            "--passphrase-file", str(passphrase), "--poll", "0.2",
                            cwd=base)
    finally:
        set_thaw_pending(s3.endpoint, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backup 20130109T120000Z" in result.stdout
    assert result.stdout.count("asked S3 to thaw") == len(named)
    assert "still thawing; asking again in 0.2 s" in result.stdout
    # exactly the bags the record names were thawed
    assert {key for key in bags if thawed(s3, key)} == named
    assert snapshot(restored_source(target, source)) == states["2013-01-09"]
    # every member landed in one level's files/, as the record's chain
    files = base / "restored-newest.work" / newest["level"] / "files"
    assert sorted(p.name for p in files.iterdir()) == \
        sorted(entry["name"] for entry in newest["chain"])


def test_a_second_restore_of_another_path_fetches_nothing_again(lost):
    s3, states, source, passphrase, base = lost
    work = base / "shared-work"
    first = run_script(s3, "--date", "2013-01-08T23:00", "--target", str(base / "one"),
                       "--work", str(work), "--passphrase-file", str(passphrase),
                       "--poll", "0", cwd=base)
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_script(s3, "--time", "20130108T120000Z", "--target", str(base / "two"),
                       "--work", str(work), "--passphrase-file", str(passphrase),
                       "--path", str(source / "docs"), cwd=base)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "fetched 0 bytes" in again.stdout
    assert snapshot(base / "two") == {
        path.removeprefix("docs/"): state for path, state in states["2013-01-08"].items()
        if path.startswith("docs/")}


def test_a_finished_year_restores_from_its_year_record(lost):
    """When the retention dropped a year's backup records, ``years/YEAR.json`` (what the
    tree held of the year when it finished) still restores it."""
    s3, states, source, passphrase, base = lost
    for key in keys(s3, f"{PREFIX}/backups/2012"):
        s3.delete_object(Bucket=s3.bucket, Key=key)
    target = base / "restored-2012"
    result = run_script(s3, "--date", "2012-12-31", "--target", str(target),
                        "--passphrase-file", str(passphrase), "--poll", "0", cwd=base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"from {PREFIX}/years/2012.json" in result.stdout
    assert "backup 20121210T120000Z" in result.stdout
    assert snapshot(restored_source(target, source)) == states["2012-12-10"]


def test_list_dry_run_and_one_line_errors(lost, tmp_path):
    s3, _, _, passphrase, base = lost
    listed = run_script(s3, "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "20130109T120000Z" in listed.stdout and "year 2012" in listed.stdout
    dry = run_script(s3, "--target", str(tmp_path / "t"), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "backup 20130109T120000Z" in dry.stdout and "DEEP_ARCHIVE" in dry.stdout
    assert not (tmp_path / "t").exists() and not (tmp_path / "t.work").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    cases = [
        (["--target", str(tmp_path / "full"), "--passphrase-file", str(passphrase)], 2,
         "is not an empty directory"),
        (["--target", str(tmp_path / "t")], 2, "--passphrase-file"),
        (["--date", "2011-01-01", "--target", str(tmp_path / "t"), "--passphrase-file",
          str(passphrase)], 2, "no archived backup at or before 2011-01-01"),
        (["--date", "yesterday-ish", "--target", str(tmp_path / "t")], 2, "not a date"),
        (["--bucket", "no-such-bucket-here", "--list"], 1, "does not exist"),
    ]
    for args, status, needle in cases:
        result = run_script(s3, *args, cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == status, (args, result.stdout, result.stderr)
        assert len(lines) == 1 and needle in lines[0], (args, result.stderr)
        assert lines[0].startswith("restore-without-cya: error: ")
    assert (tmp_path / "full" / "x").read_text() == "mine"
