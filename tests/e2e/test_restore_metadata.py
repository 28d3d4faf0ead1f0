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
