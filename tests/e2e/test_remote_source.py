"""A ``user@host:/path`` source through ``cya backup`` against a real sshd on 127.0.0.1:
backed up beside a local source, listed, found and restored by its remote name, byte
for byte, and never left mounted."""

from __future__ import annotations

import json

from cya import sshfs
from cya.core.remote import parse_remote
from tests.helpers import Workspace, change_source, snapshot
from tests.integration.test_sshfs import digests, remote, server  # noqa: F401 (fixtures)


def mounted_under(path) -> list[str]:
    return [point for point in sshfs.mount_points() if point.startswith(str(path))]


def test_a_remote_source_is_backed_up_listed_and_restored_by_its_name(
        tmp_path, server, remote):  # noqa: F811 (fixtures)
    ws = Workspace(tmp_path / "ws")
    ws.init()
    spelling = server.source(remote)
    text = ws.config.read_text().replace(
        f'sources = ["{ws.source}"]',
        f"sources = {json.dumps([str(ws.source), spelling])}\n"
        f"ssh_options = {json.dumps(server.ssh_options)}")
    ws.config.write_text(text)
    change_source(ws.source, 0)
    result = ws.backup("2012-12-04T12:00")
    assert "backed up 2012-12-04 12:00:00" in result.stdout, result.stderr
    assert mounted_under(tmp_path) == []

    listed = ws.cya("ls", "--date", "2012-12-04", f"{spelling}/sub").stdout
    assert f"{spelling}/sub/random.bin" in listed, listed
    data = json.loads(ws.cya("ls", "--date", "2012-12-04", spelling, "--json").stdout)
    paths = {entry["path"] for entry in data["files"]}
    assert {f"{spelling}/hello.txt", f"{spelling}/link"} <= paths
    found = json.loads(ws.cya("find", "hello.txt", "--json").stdout)
    assert [m["path"] for f in found for m in f["matches"]] == [f"{spelling}/hello.txt"]

    whole = tmp_path / "whole"
    ws.cya("restore", "--date", "2012-12-04", "--target", str(whole))
    assert snapshot(whole / str(ws.source).lstrip("/")) == snapshot(ws.source)
    (point,) = sshfs.RemoteNames.of(
        [parse_remote(spelling)], tmp_path / "ws" / "xdg-state" / "cya" / "mnt").mapping
    assert digests(whole / point.lstrip("/")) == digests(remote)

    part = tmp_path / "part"
    ws.cya("restore", "--date", "2012-12-04", "--path", f"{spelling}/sub", "--target", str(part))
    # a --path restore puts what it names into the target under its own name
    assert digests(part) == {name: digest for name, digest in digests(remote).items()
                             if name.startswith("sub/")}


def test_a_backup_killed_with_a_remote_source_mounted_is_cleaned_by_the_next(
        tmp_path, server, remote):  # noqa: F811 (fixtures)
    """cya dies like kill -9 mid-backup while the remote source is mounted: the next
    backup unmounts what the dead run left, backs up, and leaves nothing mounted."""
    ws = Workspace(tmp_path / "ws")
    ws.init()
    spelling = server.source(remote)
    ws.config.write_text(ws.config.read_text().replace(
        f'sources = ["{ws.source}"]',
        f"sources = {json.dumps([str(ws.source), spelling])}\n"
        f"ssh_options = {json.dumps(server.ssh_options)}"))
    change_source(ws.source, 0)
    killed = ws.cya("--now", "2012-12-04T12:00", "backup", check=False,
                    env={"CYA_CRASH_AT": "after-seed"})
    assert killed.returncode == 137, killed.stderr
    assert mounted_under(tmp_path) != []  # the dead run's mount is still there
    ws.backup("2012-12-04T12:00")
    assert mounted_under(tmp_path) == []
    data = json.loads(ws.cya("ls", "--date", "2012-12-04", spelling, "--json").stdout)
    assert f"{spelling}/hello.txt" in {entry["path"] for entry in data["files"]}
