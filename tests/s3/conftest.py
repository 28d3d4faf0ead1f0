"""A real S3-protocol server for the archive tests: ``moto_server`` on 127.0.0.1 and a
free port, spoken to over HTTP by boto3 (in cya, a real process) exactly as AWS is.

One server per test session (it starts in about a second); every test gets a fresh,
empty bucket of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

from tests.helpers import Workspace

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> str:
    assert MOTO_SERVER.exists(), "moto_server is missing: install the project's test extra"
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    server = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("moto_server did not start") from None
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait(10)
    log.close()


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    """A boto3 client on the server, with the test's own empty bucket in ``s3.bucket``."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"cya-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    client.endpoint = moto_endpoint
    return client


def archive_workspace(base: Path, s3, *extra: str) -> Workspace:
    """A workspace after ``cya init`` with the archive pointed at the test's bucket."""
    ws = Workspace(base)
    ws.env.update(CREDENTIALS)
    ws.init("--bucket", s3.bucket, "--endpoint-url", s3.endpoint, *extra)
    return ws


def keys(s3, prefix: str = "") -> dict[str, dict]:
    """Every object in the test bucket: key -> its listing entry."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            found[item["Key"]] = item
    return found


def set_thaw_pending(endpoint: str, heads: int | None) -> None:
    """Make thaws last (None: thaws finish at once again, moto's default).

    moto counts reads of each object: after a restore request a thaw moves on (not yet
    started -> in progress -> done) every ``heads`` counts, and one HEAD counts about
    twice. Its first step reports ``ongoing-request="false"`` (as if done), so keep
    ``heads`` small (4: the two HEADs after the request say "in progress"); to hold a
    thaw in progress, raise it once a HEAD said so."""
    if heads is None:
        path, body = "unset-transition", '{"model_name": "s3::keyrestore"}'
    else:
        path = "set-transition"
        body = ('{"model_name": "s3::keyrestore", "transition": '
                f'{{"progression": "manual", "times": {heads}}}}}')
    request = urllib.request.Request(f"{endpoint}/moto-api/state-manager/{path}",
                                     data=body.encode(), method="POST")
    urllib.request.urlopen(request, timeout=5).close()


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
