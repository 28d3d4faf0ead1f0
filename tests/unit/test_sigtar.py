"""Which paths a backup stored, from duplicity's signature file (cya/core/sigtar.py and
``duplicity.stored_paths``): real files duplicity 3.2.1 wrote (data/README.rst), and
tars Python's tarfile writes as duplicity does, in every format, for any name."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cya.core import sigtar
from cya.duplicity import Cache, stored_paths
from cya.errors import CyaError

DATA = Path(__file__).parent / "data"
FULL = "duplicity-full-signatures.20121204T120000Z.sigtar.gz"
INCREMENTAL = "duplicity-new-signatures.20121204T120000Z.to.20121205T120000Z.sigtar.gz"
LONG_DIR = b"long-" + b"x" * 200


def read(name: str, full: bool) -> list[tuple[str, bytes]]:
    with gzip.open(DATA / name) as handle:
        return list(sigtar.changes(handle.read, full))


def test_a_real_full_names_every_path_it_holds_as_its_bytes():
    assert read(FULL, full=True) == [("A", name) for name in [
        b".", b"back\\slash.txt", "café-utf8.txt".encode(), b"caf\xe9\nnew.txt",
        b"caf\xe9.txt", b"dir", b"dir/changed.txt", b"dir/gone.txt", b"it's.txt", b"link",
        LONG_DIR, LONG_DIR + b"/" + b"y" * 120, b"new\nline.txt", b"tab\there",
        b"with space.txt"]]


def test_a_real_incremental_names_what_it_added_changed_and_deleted():
    assert read(INCREMENTAL, full=False) == [
        ("M", b"."), ("M", b'added"dq.txt'), ("M", b"added\xff'q.txt"), ("M", b"dir"),
        ("M", b"dir/changed.txt"), ("D", b"dir/gone.txt"), ("D", b"it's.txt"),
        ("M", b"new\nline.txt")]


def in_cache(tmp_path: Path, *names: str) -> Cache:
    folder = tmp_path / "cache" / "fx"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(DATA / name, folder / name)
    return Cache(tmp_path / "cache", "fx")


def test_stored_paths_finds_the_signature_file_of_the_backup_it_is_asked_for(tmp_path):
    cache = in_cache(tmp_path, FULL, INCREMENTAL)
    full = datetime(2012, 12, 4, 12, tzinfo=UTC)
    incremental = datetime(2012, 12, 5, 12, tzinfo=UTC)
    assert list(stored_paths(cache, full)) == read(FULL, full=True)
    assert list(stored_paths(cache, incremental)) == read(INCREMENTAL, full=False)
    # a signature file not gzipped (duplicity keeps the name's suffix) reads the same
    folder = cache.archive_dir / cache.name
    plain = folder / INCREMENTAL.removesuffix(".gz")
    plain.write_bytes(gzip.decompress((folder / INCREMENTAL).read_bytes()))
    (folder / INCREMENTAL).unlink()
    assert list(stored_paths(cache, incremental)) == read(INCREMENTAL, full=False)
    # duplicity makes a full when it cannot make the incremental it was asked for: the
    # file's name says which it made
    (folder / FULL).rename(folder / FULL.replace("20121204T120000Z", "20121205T120000Z"))
    (folder / plain.name).unlink()
    assert [change for change, _ in stored_paths(cache, incremental)] == ["A"] * 15


def test_stored_paths_fails_with_one_line_when_the_file_is_missing_or_damaged(tmp_path):
    cache = in_cache(tmp_path, FULL)
    with pytest.raises(CyaError, match="duplicity left no signature file for the backup at "
                                       "20121205T120000Z"):
        list(stored_paths(cache, datetime(2012, 12, 5, 12, tzinfo=UTC)))
    folder = cache.archive_dir / cache.name  # the signature file of another set
    (folder / INCREMENTAL.replace(".to.20121205", ".to.20121206")).touch()
    with pytest.raises(CyaError, match="no signature file"):
        list(stored_paths(cache, datetime(2012, 12, 5, 12, tzinfo=UTC)))
    damaged = cache.archive_dir / cache.name / FULL
    damaged.write_bytes(damaged.read_bytes()[:300])
    with pytest.raises(CyaError, match="signature file .* cannot be read"):
        list(stored_paths(cache, datetime(2012, 12, 4, 12, tzinfo=UTC)))


# --- any tar tarfile writes ---------------------------------------------------------------

names = st.lists(st.binary(min_size=1, max_size=40).filter(
    lambda part: b"/" not in part and b"\0" not in part and part not in (b".", b"..")),
    min_size=1, max_size=8).map(b"/".join)
members = st.lists(st.tuples(st.sampled_from(["signature", "snapshot", "deleted"]), names,
                             st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE,
                                              tarfile.SYMTYPE]),
                             st.integers(0, 3000)), max_size=12)


def written(entries, format: int, encoding: str = "utf-8") -> bytes:
    """A tar as duplicity writes one in ``format`` in a process whose file system
    encoding is ``encoding`` (names decoded with it, surrogates for what it cannot)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format, encoding=encoding) as tar:
        for prefix, name, kind, size in entries:
            info = tarfile.TarInfo(f"{prefix}/{name.decode(encoding, 'surrogateescape')}")
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "target"
            data = bytes(size % 251 for size in range(size)) if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


LONG = [("snapshot", b"d" * 150, tarfile.DIRTYPE, 0),
        ("signature", b"d" * 150 + b"/\xff\n" + b"f" * 150, tarfile.REGTYPE, 700),
        ("deleted", b"g" * 99, tarfile.REGTYPE, 0)]


@settings(max_examples=200, deadline=None)
@given(members, st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
       st.sampled_from(["utf-8", "iso8859-1"]))
@example(LONG, tarfile.PAX_FORMAT, "utf-8")
@example(LONG, tarfile.GNU_FORMAT, "utf-8")
@example([("signature", "café".encode("iso8859-1"), tarfile.REGTYPE, 1)], tarfile.PAX_FORMAT,
         "iso8859-1")
def test_every_member_tarfile_writes_is_read_by_its_whole_name(entries, format, encoding):
    data = written(entries, format, encoding)
    got = list(sigtar.member_names(io.BytesIO(data).read, encoding))
    assert got == [f"{prefix}/".encode() + name + (b"/" if kind == tarfile.DIRTYPE else b"")
                   for prefix, name, kind, _ in entries]
    # as tarfile itself reads the names back (what duplicity reads)
    with tarfile.open(fileobj=io.BytesIO(data), encoding=encoding) as tar:
        assert [member.name.encode(encoding, "surrogateescape") for member in tar] == [
            name.rstrip(b"/") for name in got]
    assert list(sigtar.changes(io.BytesIO(data).read, False, encoding)) == [
        ("D" if prefix == "deleted" else "M", name) for prefix, name, _, _ in entries]
    assert [change for change, _ in sigtar.changes(io.BytesIO(data).read, True, encoding)] == [
        "D" if prefix == "deleted" else "A" for prefix, _, _, _ in entries]


def test_a_size_in_a_pax_record_skips_the_whole_member():
    """tarfile writes a size of 8 GiB or more as a PAX record and 0 in the header: here a
    small one, written the same way. Reading the member's data (zeros) as headers would
    end the list early."""
    header = tarfile.TarInfo("signature/big")
    header.pax_headers = {"size": "5000"}
    data = (header.tobuf(tarfile.PAX_FORMAT) + bytes(5120)
            + written([("signature", b"next", tarfile.REGTYPE, 3)], tarfile.PAX_FORMAT))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # as tarfile reads it
        assert [(member.name, member.size) for member in tar] == [
            ("signature/big", 5000), ("signature/next", 3)]
    assert list(sigtar.member_names(io.BytesIO(data).read)) == [
        b"signature/big", b"signature/next"]


def test_a_size_past_what_octal_holds_is_read_in_base_256():
    field = bytes([0x80]) + (8 << 30).to_bytes(11, "big")
    assert sigtar._number(field) == 8 << 30
    assert sigtar._number(b"00000001750\0") == 1000
    assert sigtar._number(b"\0" * 12) == 0


@pytest.mark.parametrize("damage", [
    lambda data: data[:700],  # ends in the middle of a member
    lambda data: data[:512],  # ends without the end-of-archive blocks
    lambda data: b"x" * 1024,  # not a tar
    lambda data: data[:124] + b"9" * 12 + data[136:],  # a garbled size
])
def test_a_damaged_tar_is_an_error_not_a_short_list(damage):
    data = written([("signature", b"a", tarfile.REGTYPE, 600),
                    ("signature", b"b", tarfile.REGTYPE, 10)], tarfile.PAX_FORMAT)
    with pytest.raises(sigtar.SigtarError):
        list(sigtar.changes(io.BytesIO(damage(data)).read, False))


def test_a_member_duplicity_does_not_write_is_an_error():
    data = written([("signature", b"a", tarfile.REGTYPE, 1)], tarfile.PAX_FORMAT)
    data = data.replace(b"signature/a", b"elsewhere/a")
    with pytest.raises(sigtar.SigtarError, match="unexpected member"):
        list(sigtar.changes(io.BytesIO(data).read, False))
