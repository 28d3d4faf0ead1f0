"""Hard links, ACLs, xattrs, holes and exact times survive a real duplicity round trip.

Everything happens on a loop-mounted ext4 image made as root, so ACLs, user and
security xattrs and hole punching are there whatever the machine's /tmp is; a
machine where that cannot be made fails the run, it does not skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cya.core import metadata as formats
from cya.duplicity import glob_escape
from cya.errors import MetadataError
from cya.metadata import ACLS, HARD_LINKS, SPARSE, TIMES, XATTRS, apply, record
from tests.helpers import DUPLICITY

MiB = 1 << 20
FULL_TIME = 1_700_000_000
INCREMENTAL_TIME = FULL_TIME + 86_400
ODD = b"odd\nname \xff\\012 x"  # a newline, invalid UTF-8 and a backslash before digits


def run(*argv: str | bytes, cwd: Path | None = None) -> bytes:
    result = subprocess.run(list(argv), cwd=cwd, capture_output=True)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


@pytest.fixture(scope="module")
def ext4(tmp_path_factory) -> Path:
    """A fresh ext4 file system mounted for this module; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the metadata tests need root to loop-mount an ext4 image")
    for tool in ("mkfs.ext4", "mount", "setfacl", "getfacl", "setfattr", "getfattr", "setcap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install e2fsprogs acl attr libcap2-bin")
    base = tmp_path_factory.mktemp("ext4")
    image, mount_point = base / "image", base / "mnt"
    mount_point.mkdir()
    run("truncate", "-s", "200M", str(image))
    run("mkfs.ext4", "-q", "-F", str(image))
    run("mount", "-o", "loop", str(image), str(mount_point))
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def rel(path: Path) -> str:
    return str(path).lstrip("/")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_source(src: Path) -> None:
    """The issue's source: links, xattrs, ACLs, a capability, a sparse file, exact times."""
    a, b = src / "a", src / "b"
    pair = write(a / "pair1", b"pair\n" * 100)
    os.link(pair, a / "pair2")
    triple = write(a / "t1", b"triple\n" * 100)
    b.mkdir()
    os.link(triple, b / "t2")
    os.link(triple, b / "t3")
    run("setfattr", "-n", "user.comment", "-v", "kept by cya", str(write(a / "xattr", b"x\n")))
    run("setfacl", "-m", "u:nobody:rw-", str(write(a / "acl-file", b"acl\n")))
    (b / "acl-dir").mkdir()
    run("setfacl", "-m", "u:daemon:rwx", str(b / "acl-dir"))
    run("setfacl", "-d", "-m", "g:daemon:r-x", str(b / "acl-dir"))
    write(b / "acl-dir" / "inside", b"inside\n")
    capable = write(a / "cap", b"#!/bin/true\n")
    capable.chmod(0o755)
    run("setcap", "cap_net_raw+ep", str(capable))
    with open(a / "sparse", "wb") as sparse:
        sparse.truncate(64 * MiB)
        sparse.seek(32 * MiB)
        sparse.write(os.urandom(4096))
    odd = os.path.join(os.fsencode(a), ODD)
    with open(odd, "wb") as handle:
        handle.write(b"odd\n")
    os.link(odd, os.path.join(os.fsencode(b), ODD))
    run(b"setfattr", b"-n", b"user.odd", b"-v", b"0xff00", odd)
    run(b"setfacl", b"-m", b"u:nobody:r--", odd)
    nano = write(a / "nano", b"nano\n")
    (a / "nano-link").symlink_to("nano")
    os.utime(nano, ns=(FULL_TIME * 10**9, 1_600_000_000_123_456_789))
    os.utime(a / "nano-link", ns=(FULL_TIME * 10**9, 1_600_000_001_987_654_321),
             follow_symlinks=False)
    for number in range(100):  # enough names that an incremental's mtimes are appended
        os.utime(write(src / "many" / f"m{number:03d}", b"m\n"),
                 ns=(FULL_TIME * 10**9, 1_600_000_002_000_000_001 + number))


def change_source(src: Path) -> None:
    """The incremental's changes: an ACL edited, one link of a pair removed, an xattr added."""
    run("setfacl", "-m", "u:nobody:r--", str(src / "a" / "acl-file"))
    (src / "a" / "pair2").unlink()
    run("setfattr", "-n", "user.added", "-v", "later", str(src / "a" / "nano"))
    os.utime(src / "a" / "nano", ns=(FULL_TIME * 10**9, 1_650_000_000_000_000_001))


def blocks(text: bytes, drop_acl_xattrs: bool = False) -> list[bytes]:
    """getfacl/getfattr output as its sorted per-file blocks (tools list in readdir order)."""
    result = []
    for block in text.split(b"\n\n"):
        lines = [line for line in block.strip(b"\n").split(b"\n") if line]
        if drop_acl_xattrs:
            lines = [line for line in lines if not line.startswith(b"system.posix_acl_")]
        if len(lines) > 1:
            result.append(b"\n".join(lines))
    return sorted(result)


def acls_of(parent: Path, name: str) -> list[bytes]:
    return blocks(run("getfacl", "--recursive", "--skip-base", "--physical", name, cwd=parent))


def xattrs_of(parent: Path, name: str) -> list[bytes]:
    return blocks(run("getfattr", "--recursive", "--dump", "--match=-", "--encoding=base64",
                      "--no-dereference", "--physical", name, cwd=parent))


def state(root: Path) -> dict:
    """What the metadata must reproduce under ``root``: ACLs and xattrs as the tools print
    them, inode groups with link counts, every entry's mtime in nanoseconds, and holes."""
    inodes: dict[int, set[bytes]] = {}
    times = {}
    links = {}
    for directory, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, os.fsencode(root))
            times[relative] = info.st_mtime_ns
            if os.path.isfile(path) and not os.path.islink(path):
                inodes.setdefault(info.st_ino, set()).add(relative)
                links[relative] = info.st_nlink
    groups = sorted(sorted(names) for names in inodes.values() if len(names) > 1)
    sparse = os.lstat(root / "a" / "sparse")
    return {"acl": acls_of(root.parent, root.name), "xattr": xattrs_of(root.parent, root.name),
            "groups": groups, "nlink": links, "times": times,
            "sparse": (sparse.st_size, sparse.st_blocks * 512 < MiB)}


class Duplicity:
    """Plain duplicity, unencrypted, backing up chosen paths from ``/`` as cya does."""

    def __init__(self, base: Path, includes: list[Path]):
        self.url = f"file://{base / 'backups'}"
        self.cache = str(base / "duplicity-cache")
        self.includes = includes

    def _run(self, *args: str) -> None:
        run(DUPLICITY, *args, "--no-encryption", "--archive-dir", self.cache, "--name", "meta")

    def backup(self, action: str, when: int) -> None:
        selection = []
        for path in self.includes:
            selection += ["--include", glob_escape(str(path))]
        self._run(action, "--current-time", str(when), *selection, "--exclude", "**", "/",
                  self.url)

    def restore(self, when: int, target: Path, path: str | None = None) -> None:
        extra = ["--path-to-restore", path] if path else []
        self._run("restore", "--time", str(when), *extra, self.url, str(target))


def assert_metadata(restored: Path, expected: dict) -> None:
    got = state(restored)
    for key in ("acl", "xattr", "groups", "nlink", "times"):
        assert got[key] == expected[key], key
    assert got["sparse"] == (64 * MiB, True)


def assert_nothing_failed(report) -> None:
    assert report.failed == 0, report.lines()
    assert len(report.lines()) == 5


@pytest.fixture(autouse=True)
def remove_restores(ext4):
    """Each restore holds a 64 MiB file; the 200 MiB image has room for two at a time."""
    yield
    for restored in (ext4 / "round-trip").glob("restore-*"):
        shutil.rmtree(restored)


@pytest.fixture(scope="module")
def round_trip(ext4):
    """A full and an incremental of the source with its metadata, and each one's state."""
    base = ext4 / "round-trip"
    src, meta = base / "src", base / "meta"
    src.mkdir(parents=True)
    make_source(src)
    dup = Duplicity(base, [src, meta])
    states = {}
    for action, when in (("full", FULL_TIME), ("incremental", INCREMENTAL_TIME)):
        if action == "incremental":
            change_source(src)
        stats = record([src], meta, cache=base / "metadata-cache")  # as cya backup does
        assert stats.unreadable == 0
        dup.backup(action, when)
        states[when] = state(src)
    assert states[FULL_TIME] != states[INCREMENTAL_TIME]
    # the incremental's mtimes.txt is the full's, its changes in mtimes-changes.txt
    assert (meta / formats.MTIME_CHANGES_FILE).read_bytes().startswith(b"# changes\n")
    return base, src, meta, dup, states


def test_record_writes_what_getfacl_and_getfattr_print(ext4):
    base = ext4 / "tools"
    src = base / "src"
    src.mkdir(parents=True)
    make_source(src)
    stats = record([src, src / "a"], base / "meta", skip=[src / "b" / "acl-dir"])
    assert (stats.link_groups, stats.link_names, stats.sparse) == (3, 7, 1)
    acl_text = (base / "meta" / formats.ACL_FILE).read_bytes()
    xattr_text = (base / "meta" / formats.XATTR_FILE).read_bytes()
    # skip: the tools cannot leave a sub-tree out, so compare with it taken away
    shutil.rmtree(src / "b" / "acl-dir")
    assert blocks(acl_text) == acls_of(Path("/"), rel(src))
    assert blocks(xattr_text) == blocks(run("getfattr", "-R", "-d", "-m", "-", "-e", "base64",
                                            "-h", "-P", rel(src), cwd=Path("/")), True)
    assert b"acl-dir" not in b"".join((base / "meta" / name).read_bytes()
                                      for name in formats.ALL_FILES)
    again = record([src], base / "meta")
    assert again.bytes_written > 0  # acl-dir went
    assert record([src], base / "meta").bytes_written == 0  # unchanged: nothing rewritten


def test_a_source_without_special_metadata_records_almost_nothing(ext4):
    src = ext4 / "plain" / "src"
    write(src / "d" / "f", b"plain\n")
    for path in (src / "d" / "f", src / "d", src):
        os.utime(path, (FULL_TIME, FULL_TIME))
    stats = record([src], ext4 / "plain" / "meta")
    assert (stats.acls, stats.xattrs, stats.link_groups, stats.sparse, stats.times) == \
        (0, 0, 0, 0, 0)
    sizes = {name: (ext4 / "plain" / "meta" / name).stat().st_size for name in formats.ALL_FILES}
    assert sizes[formats.ACL_FILE] == sizes[formats.XATTR_FILE] == 0
    assert max(sizes.values()) < 100


def test_each_restore_has_exactly_its_backups_metadata(round_trip, ext4):
    base, src, meta, dup, states = round_trip
    for when in (FULL_TIME, INCREMENTAL_TIME):
        target = base / f"restore-{when}"
        dup.restore(when, target)
        report = apply(target / rel(meta), "", target)
        assert_nothing_failed(report)
        assert report.outcome(HARD_LINKS).applied == (4 if when == FULL_TIME else 3)
        assert report.outcome(SPARSE).applied == 1
        assert_metadata(target / rel(src), states[when])
        restored = target / rel(src) / "a"
        assert os.lstat(restored / "nano-link").st_mtime_ns == 1_600_000_001_987_654_321
        assert os.lstat(restored / "nano").st_mtime_ns == (
            1_600_000_000_123_456_789 if when == FULL_TIME else 1_650_000_000_000_000_001)


def test_without_apply_duplicity_alone_loses_it(round_trip):
    base, src, meta, dup, states = round_trip
    target = base / "restore-plain-duplicity"
    dup.restore(FULL_TIME, target)
    got = state(target / rel(src))
    assert got["groups"] == [] and got["acl"] == [] and got["sparse"] == (64 * MiB, False)


def test_plain_setfacl_and_setfattr_restore_the_same(round_trip):
    base, src, meta, dup, states = round_trip
    for when in (FULL_TIME, INCREMENTAL_TIME):
        target = base / f"restore-tools-{when}"
        dup.restore(when, target)
        recorded = target / rel(meta)
        run("setfacl", f"--restore={recorded / formats.ACL_FILE}", cwd=target)
        run("setfattr", "--no-dereference", f"--restore={recorded / formats.XATTR_FILE}",
            cwd=target)
        got = state(target / rel(src))
        assert got["acl"] == states[when]["acl"]
        assert got["xattr"] == states[when]["xattr"]


def readme_recipe() -> str:
    """README's plain-tools recipe for re-applying the metadata, as it stands there."""
    text = (Path(__file__).parents[2] / "README.rst").read_text()
    start = text.index("    cd /tmp/restored\n    M=")
    lines = []
    for line in text[start:].splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def test_readmes_recipe_restores_all_of_it_without_cya(round_trip, tmp_path):
    """README's recipe, run by bash exactly as written there, on a plain duplicity restore
    of the incremental (its mtimes.txt holds appended changes): links, holes, ACLs,
    xattrs and nanosecond times as the source had them, odd names included."""
    base, src, meta, dup, states = round_trip
    target = base / "restore-recipe"
    dup.restore(INCREMENTAL_TIME, target)
    recipe = readme_recipe()
    assert "M=var/backups/cya/.cya/metadata" in recipe and "/tmp/time" in recipe
    recipe = recipe.replace("cd /tmp/restored", f"cd {target}") \
        .replace("M=var/backups/cya/.cya/metadata", f"M={rel(meta)}") \
        .replace("/tmp/time", str(tmp_path / "time"))
    result = subprocess.run(["bash", "-c", recipe], capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    got, expected = state(target / rel(src)), states[INCREMENTAL_TIME]
    for key in ("acl", "xattr", "groups", "nlink", "times"):
        assert got[key] == expected[key], key
    assert any(ODD in name for group in got["groups"] for name in group)
    assert got["sparse"] == (64 * MiB, True)


def test_a_path_restore_links_only_what_it_holds(round_trip):
    base, src, meta, dup, states = round_trip
    target = base / "restore-path"
    target.mkdir()
    dup.restore(FULL_TIME, base / "restore-path-meta", rel(meta))
    # one member of the pair, its partner outside the path: a plain file, no error
    dup.restore(FULL_TIME, target / "pair1", rel(src / "a" / "pair1"))
    report = apply(base / "restore-path-meta", rel(src / "a" / "pair1"), target / "pair1")
    assert_nothing_failed(report)
    assert os.lstat(target / "pair1").st_nlink == 1
    assert "1 kept as plain files" in report.outcome(HARD_LINKS).line()
    # b/ holds two of the triple (t1 lies in a/) and the directory with a default ACL
    dup.restore(FULL_TIME, target / "b", rel(src / "b"))
    report = apply(base / "restore-path-meta", "/" + rel(src / "b") + "/", target / "b")
    assert_nothing_failed(report)
    t2, t3 = os.lstat(target / "b" / "t2"), os.lstat(target / "b" / "t3")
    assert t2.st_ino == t3.st_ino and t2.st_nlink == 2
    assert acls_of(target, "b") == acls_of(src, "b")
    odd = os.lstat(os.path.join(os.fsencode(target / "b"), ODD))
    assert odd.st_nlink == 1


def test_what_cannot_be_applied_is_counted_per_kind_and_strict_fails(round_trip, ext4):
    base, src, meta, dup, states = round_trip
    no_acls = base / "ramfs"
    no_acls.mkdir()
    run("mount", "-t", "ramfs", "ramfs", str(no_acls))
    try:
        dup.restore(FULL_TIME, no_acls / "r")
        target = no_acls / "r"
        report = apply(target / rel(meta), "", target)
        assert report.outcome(ACLS).failed == 5 and report.outcome(ACLS).applied == 0
        assert "does not support ACLs" in report.outcome(ACLS).line()
        # user.comment, security.capability, and user.odd on both names of its inode
        assert report.outcome(XATTRS).failed == 4
        assert report.outcome(SPARSE).failed == 1
        assert report.outcome(TIMES).failed == 0
        assert os.lstat(target / rel(src) / "a" / "pair2").st_ino == \
            os.lstat(target / rel(src) / "a" / "pair1").st_ino
        with pytest.raises(MetadataError, match="ACLs: 0 files' ACLs set, 5 not applied"):
            apply(target / rel(meta), "", target, strict=True)
    finally:
        subprocess.run(["umount", str(no_acls)], capture_output=True)


def test_without_privileges_trusted_and_security_xattrs_are_counted(ext4):
    """Root with every capability dropped stands for a user restoring their own files."""
    base = ext4 / "unprivileged"
    meta = base / "meta"
    target = base / "target"
    write(target / "f", b"f\n")
    (meta / formats.XATTR_FILE).parent.mkdir(parents=True)
    (meta / formats.XATTR_FILE).write_bytes(formats.format_xattrs([formats.FileXattrs(
        b"f", ((b"security.capability", bytes.fromhex("0100000200200000000000000000000000"
                                                      "000000")),
               (b"trusted.note", b"t"), (b"user.note", b"u")))]))
    code = ("import sys\nfrom pathlib import Path\nfrom cya.metadata import apply\n"
            f"report = apply(Path({str(meta)!r}), '', Path({str(target)!r}))\n"
            "print('\\n'.join(report.lines()))\n"
            f"apply(Path({str(meta)!r}), '', Path({str(target)!r}), strict=True)\n")
    result = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                             sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert result.returncode != 0 and "MetadataError" in result.stderr, result.stderr
    assert "xattrs: 1 attributes set, 2 not applied (" in result.stdout, result.stdout
    assert "needs root: restore as root" in result.stdout
    assert os.getxattr(target / "f", "user.note") == b"u"


def test_nothing_is_done_through_a_symlink_or_over_data(ext4, tmp_path):
    base = ext4 / "guards"
    target = base / "target"
    outside = tmp_path / "outside"
    write(outside / "victim", b"\0" * 8192)
    target.mkdir(parents=True)
    (target / "dir").symlink_to(outside)
    write(target / "notzero", b"data" * 4096)
    meta = base / "meta"
    meta.mkdir()
    (meta / formats.XATTR_FILE).write_bytes(formats.format_xattrs(
        [formats.FileXattrs(b"dir/victim", ((b"user.evil", b"1"),))]))
    (meta / formats.SPARSE_FILE).write_bytes(formats.format_sparse(
        [formats.SparseFile(b"notzero", 16384, ()), formats.SparseFile(b"dir/victim", 8192, ())]))
    report = apply(meta, "", target)
    assert report.outcome(XATTRS).failed == 1 and report.outcome(SPARSE).failed == 1
    assert "symlink" in report.outcome(XATTRS).reason
    assert os.listxattr(outside / "victim") == []
    assert os.lstat(outside / "victim").st_blocks > 0
    assert (target / "notzero").read_bytes() == b"data" * 4096
