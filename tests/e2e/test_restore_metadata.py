"""What duplicity loses comes back through ``cya backup`` and ``cya restore``: hard links,
ACLs, xattrs (a file capability too), holes and nanosecond times, on a loop-mounted
ext4 image (root; a machine without one fails, never skips)."""

from __future__ import annotations

import os
import shutil

from tests.helpers import Workspace
from tests.integration.test_metadata import (  # noqa: F401 (ext4 is a fixture)
    MiB,
    acls_of,
    ext4,
    make_source,
    rel,
    state,
    xattrs_of,
)


def test_cya_restore_puts_back_what_duplicity_drops(ext4, tmp_path):  # noqa: F811 (fixture)
    ws = Workspace(tmp_path / "ws")
    ws.source = ext4 / "source"
    ws.source.mkdir()
    make_source(ws.source)
    expected = state(ws.source)
    ws.init()
    ws.backup("2012-12-04T12:00")

    whole = ext4 / "whole"
    result = ws.cya("restore", "--date", "2012-12-04", "--target", str(whole))
    assert "could not" not in result.stdout + result.stderr, result.stderr
    got = state(whole / rel(ws.source))
    for key in ("acl", "xattr", "groups", "nlink", "times"):
        assert got[key] == expected[key], key
    assert got["sparse"] == (64 * MiB, True)  # never left allocated
    assert os.getxattr(whole / rel(ws.source) / "a" / "cap", "security.capability")
    shutil.rmtree(whole)  # room on the image for the next restore

    plain = ext4 / "plain"
    ws.cya("restore", "--date", "2012-12-04", "--target", str(plain), "--no-metadata")
    got = state(plain / rel(ws.source))
    assert got["groups"] == [] and got["acl"] == [] and got["sparse"] == (64 * MiB, False)
    shutil.rmtree(plain)

    part = ext4 / "part"
    ws.cya("restore", "--date", "2012-12-04", "--path", str(ws.source / "b"),
           "--target", str(part))
    restored = part / "b"
    # t2 and t3 share an inode again; their partner t1 lies outside the path
    assert os.lstat(restored / "t2").st_ino == os.lstat(restored / "t3").st_ino
    assert os.lstat(restored / "t2").st_nlink == 2
    # the ACLs (default ACL included) and xattrs of what the path holds, as the tools print
    assert acls_of(part, "b") == acls_of(ws.source, "b") != []
    assert xattrs_of(part, "b") == xattrs_of(ws.source, "b")


def test_cya_backup_records_with_its_cache_and_leaves_out_what_it_excludes(tmp_path):
    """Through ``cya backup``: an excluded file's name is in no metadata file; the next
    backup leaves mtimes.txt as it was and appends the day's change to
    mtimes-changes.txt; a restore of that backup still gets the exact new time."""
    ws = Workspace(tmp_path / "ws")
    ws.init()
    ws.config.write_text(ws.config.read_text().replace(
        "exclude = []", 'exclude = ["**/secret.key"]'))
    for number in range(30):
        path = ws.source / f"f{number:02d}.txt"
        path.write_text(f"{number}\n")
        os.utime(path, ns=(0, 1_600_000_000_000_000_000 + number * 1_000_001))
    (ws.source / "secret.key").write_text("k\n")
    ws.backup("2012-12-04T12:00")
    recorded = ws.tree / ".cya" / "metadata"
    assert (ws.tree / ".cya" / "metadata-cache").is_file()
    for name in os.listdir(recorded):
        assert b"secret.key" not in (recorded / name).read_bytes(), name
    first = os.stat(recorded / "mtimes.txt")
    os.utime(ws.source / "f07.txt", ns=(0, 1_650_000_000_000_000_007))
    ws.backup("2012-12-05T12:00")
    kept = os.stat(recorded / "mtimes.txt")
    assert (kept.st_ino, kept.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    changes = (recorded / "mtimes-changes.txt").read_bytes()
    assert changes.startswith(b"# changes\n") and b"1650000000000000007 f07.txt" in changes
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2012-12-05", "--target", str(target))
    restored = target / str(ws.source).lstrip("/")
    assert os.stat(restored / "f07.txt").st_mtime_ns == 1_650_000_000_000_000_007
    assert os.stat(restored / "f08.txt").st_mtime_ns == 1_600_000_000_008_000_008
    assert not (restored / "secret.key").exists()
