"""What makes daily recording cheap never makes it wrong: the cache of what the last
recording read (xattrs and ACLs re-read by ctime, mtimes.txt appended to), and the
config's exclude globs (left out exactly as duplicity leaves them out).

On a loop-mounted ext4 image made as root (tests/integration/test_metadata.py);
a machine where that cannot be made fails the run, it does not skip.
"""

# ruff: noqa: F811 - the tests take the ext4 fixture imported from test_metadata

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from cya import metadata
from cya.core import metadata as formats
from cya.duplicity import glob_escape
from cya.metadata import exclusion, record
from tests.helpers import DUPLICITY
from tests.integration.test_metadata import acls_of, blocks, ext4, rel, run, write  # noqa: F401

SETTLE_S = 2.1  # the cache keeps no inode whose ctime is within 2 s of its reading


def read(meta: Path, name: str) -> bytes:
    return (meta / name).read_bytes()


def xattr_blocks(source: Path) -> list[bytes]:
    """getfattr's dump of ``source`` without the ACL xattrs, as sorted per-file blocks
    named relative to / (as recorded)."""
    return blocks(run("getfattr", "-R", "-d", "-m", "-", "-e", "base64", "-h", "-P",
                      rel(source), cwd=Path("/")), True)


def ns_times(root: Path) -> dict[bytes, int]:
    """Every entry's mtime below ``root`` (and its own), named relative to /."""
    found = {}
    for directory, dirs, files in os.walk(os.fsencode(root)):
        for name in [b"", *dirs, *files] if directory == os.fsencode(root) else [*dirs, *files]:
            path = os.path.join(directory, name) if name else directory
            found[path.lstrip(b"/")] = os.lstat(path).st_mtime_ns
    return found


@pytest.fixture(scope="module")
def settled(ext4):
    """Sources made once and left 2 s, so that their ctimes are old enough to be kept."""
    sources = {}
    src = sources["ctime"] = ext4 / "cache-ctime" / "src"
    for number in range(20):
        write(src / "many" / f"f{number:02d}", b"x\n")
    os.setxattr(write(src / "tagged", b"t\n"), "user.tag", b"one")
    write(src / "plain", b"p\n")
    (src / "dir").mkdir()
    run("setfacl", "-m", "u:nobody:r-x", str(src / "dir"))
    src = sources["damaged"] = ext4 / "cache-damaged" / "src"
    for number in range(5):
        os.setxattr(write(src / f"f{number}", b"d\n"), "user.n", b"%d" % number)
    src = sources["reuse"] = ext4 / "cache-reuse" / "src"
    write(src / "first", b"1\n")
    os.setxattr(write(src / "old", b"o\n"), "user.who", b"the old file")
    no_ctime = ext4 / "cache-ramfs"
    no_ctime.mkdir()
    run("mount", "-t", "ramfs", "ramfs", str(no_ctime))
    src = sources["ramfs"] = no_ctime / "src"
    for number in range(10):
        write(src / f"f{number}", b"r\n")
    time.sleep(SETTLE_S)
    try:
        yield sources
    finally:
        subprocess.run(["umount", str(no_ctime)], capture_output=True)


def test_an_xattr_or_acl_changed_without_a_new_mtime_is_read_again(settled):
    src = settled["ctime"]
    meta, cache = src.parent / "meta", src.parent / "cache"
    first = record([src], meta, cache=cache)
    assert first.xattr_reads == first.entries  # nothing known yet
    again = record([src], meta, cache=cache)
    assert (again.xattr_reads, again.xattrs, again.acls) == (0, 1, 1)
    assert "xattrs read for 0" in again.summary()
    tagged, plain, acl_dir = src / "tagged", src / "plain", src / "dir"
    mtimes = {path: os.lstat(path).st_mtime_ns for path in (tagged, plain, acl_dir)}
    os.setxattr(tagged, "user.tag", b"two")
    os.setxattr(plain, "user.new", b"added")
    run("setfacl", "-m", "u:daemon:r--", str(acl_dir))
    for path, mtime_ns in mtimes.items():
        os.utime(path, ns=(mtime_ns, mtime_ns))  # the mtime as it was: only ctime moved
    assert {path: os.lstat(path).st_mtime_ns for path in mtimes} == mtimes
    changed = record([src], meta, cache=cache)
    assert (changed.xattr_reads, changed.xattrs, changed.acls) == (3, 2, 1)
    assert blocks(read(meta, formats.XATTR_FILE)) == xattr_blocks(src)
    assert blocks(read(meta, formats.ACL_FILE)) == acls_of(Path("/"), rel(src))
    assert b"user.tag=0s" + b"dHdv" in read(meta, formats.XATTR_FILE)  # base64 of "two"
    os.removexattr(tagged, "user.tag")
    os.utime(tagged, ns=(mtimes[tagged], mtimes[tagged]))
    removed = record([src], meta, cache=cache)
    assert removed.xattrs == 1 and b"user.tag" not in read(meta, formats.XATTR_FILE)


def test_a_new_file_given_a_freed_inode_number_is_read_again(settled):
    src = settled["reuse"]
    meta, cache = src.parent / "meta", src.parent / "cache"
    record([src], meta, cache=cache)  # keeps "old" with its xattr: its ctime is 2 s old
    assert record([src], meta, cache=cache).xattr_reads == 0
    number = os.lstat(src / "old").st_ino
    (src / "old").unlink()
    for attempt in range(50):
        new = write(src / f"new{attempt}", b"n\n")
        if os.lstat(new).st_ino == number:
            break
    else:
        pytest.fail("ext4 gave none of 50 new files the freed inode number")
    stats = record([src], meta, cache=cache)
    assert stats.xattrs == 0 and read(meta, formats.XATTR_FILE) == b""
    assert stats.xattr_reads >= 1


def test_where_ctime_cannot_be_trusted_every_entry_is_read(settled):
    src = settled["ramfs"]  # ramfs: not one of the file systems the cache trusts
    meta, cache = src.parent / "meta", src.parent / "cache"
    record([src], meta, cache=cache)
    stats = record([src], meta, cache=cache)
    assert stats.xattr_reads == stats.entries == 11


def test_a_damaged_or_future_cache_is_dropped(settled):
    src = settled["damaged"]
    meta, cache = src.parent / "meta", src.parent / "cache"
    record([src], meta, cache=cache)
    assert record([src], meta, cache=cache).xattr_reads == 0
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    stats = record([src], meta, cache=cache)
    assert stats.xattr_reads == stats.entries
    assert record([src], meta, cache=cache).xattr_reads == 0  # written anew, whole
    future = metadata.RecordCache(cache)
    future.started += 3600 * 10**9  # as if the clock had gone back an hour since
    future.save()
    assert record([src], meta, cache=cache).xattr_reads == stats.entries
    cache.write_bytes(b"not a cache")
    assert record([src], meta, cache=cache).xattr_reads == stats.entries


def times_of(meta) -> dict:
    """The nanosecond times a metadata directory records, as a restore reads them."""
    return dict(formats.parse({name: read(meta, name) for name in
                               (formats.MTIME_FILE, formats.MTIME_CHANGES_FILE)}).times)


def test_mtimes_stay_and_only_their_changes_are_written_then_read_back_whole(ext4):
    base = ext4 / "mtimes-changes"
    src, meta, cache = base / "src", base / "meta", base / "cache"
    for number in range(200):
        path = write(src / f"d{number % 2}" / f"f{number:03d}", b"m\n")
        os.utime(path, ns=(0, 1_600_000_000_000_000_000 + number * 1_000_001))
    record([src], meta, cache=cache)
    fresh = read(meta, formats.MTIME_FILE)
    assert b"# changes" not in fresh and read(meta, formats.MTIME_CHANGES_FILE) == b""
    first = os.stat(meta / formats.MTIME_FILE)
    os.utime(src / "d0" / "f000", ns=(0, 1_650_000_000_000_000_007))
    (src / "d1" / "f001").unlink()
    os.utime(write(src / "d2" / "new", b"n\n"), ns=(0, 1_650_000_000_000_000_009))
    stats = record([src], meta, cache=cache)
    # mtimes.txt untouched (duplicity skips it), the changes in the small file
    kept = os.stat(meta / formats.MTIME_FILE)
    assert (kept.st_ino, kept.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    changes = read(meta, formats.MTIME_CHANGES_FILE)
    assert changes.startswith(b"# changes\n") and stats.bytes_written == len(changes)
    assert len(changes) < len(fresh) // 4
    assert times_of(meta) == ns_times(src)
    assert record([src], meta, cache=cache).bytes_written == 0  # nothing changed
    # a second day: its changes appended, the first day's kept before them
    os.utime(src / "d0" / "f002", ns=(0, 1_660_000_000_000_000_011))
    stats = record([src], meta, cache=cache)
    assert read(meta, formats.MTIME_FILE) == fresh
    second = read(meta, formats.MTIME_CHANGES_FILE)
    assert second.startswith(changes) and second.count(b"# changes\n") == 2
    assert b"f000" not in second[len(changes):]
    assert times_of(meta) == ns_times(src)
    # the same state, written afresh without the cache, reads back the same
    record([src], base / "meta-fresh")
    assert times_of(base / "meta-fresh") == times_of(meta)
    # changes past a quarter of mtimes.txt: written afresh, the changes emptied
    for path in (src / "d0").iterdir():
        os.utime(path, ns=(0, 1_700_000_000_000_000_001))
    record([src], meta, cache=cache)
    rewritten = read(meta, formats.MTIME_FILE)
    assert rewritten != fresh and read(meta, formats.MTIME_CHANGES_FILE) == b""
    assert times_of(meta) == ns_times(src)


def test_mtimes_are_written_afresh_when_the_file_is_not_what_the_cache_noted(ext4):
    base = ext4 / "mtimes-tampered"
    src, meta, cache = base / "src", base / "meta", base / "cache"
    for number in range(40):
        os.utime(write(src / f"f{number:02d}", b"m\n"), ns=(0, 1_600_000_000_000_000_001))
    record([src], meta, cache=cache)
    # someone (or an older cya) rewrote the file: changes against it would lose that
    wrong = read(meta, formats.MTIME_FILE).replace(b"1600000000000000001 f07",
                                                   b"1600000000000000002 f07")
    (meta / formats.MTIME_FILE).write_bytes(wrong)
    os.utime(src / "f00", ns=(0, 1_650_000_000_000_000_003))
    record([src], meta, cache=cache)
    assert read(meta, formats.MTIME_CHANGES_FILE) == b""
    assert times_of(meta) == ns_times(src)
    (meta / formats.MTIME_FILE).unlink()
    record([src], meta, cache=cache)
    assert times_of(meta) == ns_times(src)


def test_an_older_mtimes_file_with_appended_changes_still_reads_and_is_kept(ext4):
    """What an older cya wrote (changes appended to mtimes.txt) reads the same."""
    base = ext4 / "mtimes-older"
    src, meta = base / "src", base / "meta"
    for number in range(40):
        os.utime(write(src / f"f{number:02d}", b"m\n"), ns=(0, 1_600_000_000_000_000_001))
    record([src], meta)
    os.utime(src / "f00", ns=(0, 1_650_000_000_000_000_003))
    appended = read(meta, formats.MTIME_FILE) + b"# changes\n/" + \
        str(src).lstrip("/").encode() + b"\n1650000000000000003 f00\n"
    assert dict(formats.parse_times(appended)) == ns_times(src)
    (meta / formats.MTIME_FILE).write_bytes(appended)
    assert times_of(meta) == ns_times(src)


def test_excluded_trees_are_neither_walked_nor_recorded(ext4, monkeypatch):
    base = ext4 / "excluded"
    src, meta = base / "src", base / "meta"
    os.setxattr(write(src / ".cache" / "pip" / "wheel", b"w\n"), "user.x", b"1")
    write(src / "keep" / "a", b"a\n")
    os.link(src / "keep" / "a", src / "keep" / ".cache")  # a file: excluded as well
    os.setxattr(write(src / "keep" / "sub" / ".cache" / "y", b"y\n"), "user.y", b"2")
    listed = []
    listdir = os.listdir

    def watched(path):
        listed.append(path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", watched)
    stats = record([src], meta, exclude=exclusion(["**/.cache"]))
    monkeypatch.undo()
    assert not [path for path in listed if b".cache" in path]
    assert stats.excluded == 3 and stats.xattrs == 0 and stats.link_groups == 0
    for name in formats.ALL_FILES:
        assert b".cache" not in read(meta, name)
    everything = record([src], base / "meta-all")
    assert everything.xattrs == 2 and everything.link_groups == 1
    excluded_source = record([src / "keep" / "sub" / ".cache"], base / "meta-none",
                             exclude=exclusion(["**/.cache"]))
    assert (excluded_source.entries, excluded_source.excluded) == (0, 1)


def duplicity_files(base: Path, src: Path, meta: Path, patterns: list[str]) -> set[bytes]:
    """The paths below ``src`` a full duplicity backup holds, selected as cya selects."""
    url = f"file://{base / 'backup'}"
    common = ["--no-encryption", "--archive-dir", str(base / "duplicity-cache"), "--name", "x"]
    selection = ["--include", glob_escape(str(meta))]
    for pattern in patterns:
        selection += ["--exclude", pattern]
    selection += ["--include", glob_escape(str(src)), "--exclude", "**"]
    run(DUPLICITY, "full", *common, *selection, "/", url)
    listing = run(DUPLICITY, "list-current-files", *common, url)
    found = set()
    for line in listing.split(b"\n"):
        matched = re.match(rb"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} (.*)$", line)
        if matched and (matched.group(1) + b"/").startswith(os.fsencode(rel(src)) + b"/"):
            found.add(matched.group(1))
    return found


def test_recording_leaves_out_exactly_what_duplicity_leaves_out(ext4):
    base = ext4 / "as-duplicity"
    src, meta = base / "src", base / "meta"
    for name in ("a/.cache/x", "a/b/.cache/y", "a/x.cache", "home/me/tmp/t", "home/me/tmp2",
                 "home/you/tmp", "home/you/deep/tmp/t", "m/Film.ISO", "m/sub/film.iso",
                 "m/film.iso.part", "exact", "exactly", "sp ace/[x]", "caf\xe9/\u00e9t\xe9"):
        write(src / name, b"data\n")
    write(src / "home" / "you" / "tmp2", b"a file named like the excluded directory\n")
    patterns = ["**/.cache", f"{glob_escape(str(src))}/home/*/tmp/", "ignorecase:**/*.ISO",
                f"{glob_escape(str(src))}/exact"]
    for path in [src, *src.rglob("*")]:
        os.utime(path, ns=(0, 1_600_000_000_000_000_001), follow_symlinks=False)
    record([src], meta, exclude=exclusion(patterns))
    recorded = set(dict(formats.parse_times(read(meta, formats.MTIME_FILE))))
    held = duplicity_files(base, src, meta, patterns)
    assert recorded == held
    assert os.fsencode(rel(src / "home" / "you" / "tmp")) in held  # a file, not a directory
    assert not any(b"/.cache" in name or name.lower().endswith(b".iso") for name in held)
    assert os.fsencode(rel(src / "a" / "x.cache")) in held


def test_a_file_rewritten_within_its_second_still_looks_changed_to_duplicity(tmp_path):
    """duplicity skips a file whose size and mtime (to the second) did not change: a
    metadata file rewritten with as many bytes in the same second gets a later one."""
    from cya.metadata import _write

    path = tmp_path / "acl.txt"
    for number in range(20):  # well within a second, every write the same size
        before = os.stat(path).st_mtime_ns // 10**9 if path.exists() else -1
        assert _write(path, b"user:nobody:r%d-\n" % (number % 10)) > 0
        assert os.stat(path).st_mtime_ns // 10**9 > before
    assert _write(path, path.read_bytes()) == 0  # the same content: not touched


def test_sources_sharing_a_directory_record_each_time_once_in_one_block(ext4):
    """Several sources side by side: their own lines go to the directory that holds them,
    one block for all of them (each directory's block is made as it is read), and the
    file is what the listing of every name gives."""
    base = ext4 / "shared-parent"
    sources = [base / "home" / name for name in ("ann", "bob", "cid")]
    for number, source in enumerate(sources):
        for index in range(3):
            os.utime(write(source / "sub" / f"f{index}", b"s\n"),
                     ns=(0, 1_600_000_000_000_000_000 + number * 1_000 + index + 1))
        os.utime(source, ns=(0, 1_600_000_000_000_000_000 + number * 7 + 1))
    os.utime(sources[1], ns=(0, 1_600_000_000_000_000_000))  # a whole second: no line
    meta = base / "meta"
    stats = record(sources, meta)
    expected = {}
    for source in sources:
        expected.update(ns_times(source))
    del expected[os.fsencode(rel(sources[1]))]
    assert times_of(meta) == expected and stats.times == len(expected)
    text = read(meta, formats.MTIME_FILE)
    parent = b"/" + os.fsencode(rel(base / "home"))
    assert text.count(parent + b"\n") == 1  # one block for the sources' own lines
    block = text.split(parent + b"\n", 1)[1].split(b"\n/", 1)[0]
    assert [line.split(b" ", 1)[1] for line in block.splitlines()] == [b"ann", b"cid"]
    # one block per directory, in walk order: formatting what it reads gives it back
    assert text == formats.format_times(formats.parse(
        {formats.MTIME_FILE: text, formats.MTIME_CHANGES_FILE: b""}).times)
