"""The per-backup file index (core.fileindex): format 2 round trips any name, format 1
is still read, deltas apply in order, and globs and prefixes select the same paths as
before."""

import json

from hypothesis import given
from hypothesis import strategies as st

from cya.core import fileindex
from cya.core.fileindex import Entry, apply, decode, entries, record

names = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b)


def delta(*records: bytes) -> bytes:
    return fileindex.MAGIC + b"".join(records)


@given(names, names, st.integers(0, 0o177777), st.integers(0, 2**40),
       st.integers(-2**31, 2**40), st.sampled_from(["", "a", "xh", "axhs"]))
def test_a_record_round_trips_any_name_and_target(path, target, mode, size, mtime, marks):
    data = delta(record("A", path, "symlink", mode, "me", "staff", size, mtime, marks, target))
    (got,) = decode(data).entries()
    assert got == Entry(path, "symlink", size, mtime, mode, "me", "staff", target, marks)


def test_unknown_fields_deleted_and_gone_records():
    data = delta(record("M", b"a", "file", 0o100640, None, None, None, None),
                 record("D", b"b", "gone"), record("A", b"c", "gone"))
    a, b, c = decode(data).entries()
    assert a == Entry(b"a", "file", None, None, 0o100640, None, None, None, "")
    assert b == Entry(b"b", "gone", None, None) and c == Entry(b"c", "gone", None, None)


def test_deltas_apply_in_order_and_a_full_is_taken_whole():
    full = delta(record("A", b".", "dir", 0o40755, "root", "root", None, 1),
                 record("A", b"x", "file", 0o100644, "me", "me", 3, 2),
                 record("A", b"y", "file", 0o100644, "me", "me", 4, 2))
    day = delta(record("D", b"x", "gone"),
                record("M", b"y", "file", 0o100600, "me", "me", 5, 3, "a"),
                record("A", b"z\nnew", "symlink", 0o120777, "me", "me", None, 3, "", b"y"))
    listed = entries(apply([decode(full), decode(day)]))
    assert [e.path for e in listed] == [b".", b"y", b"z\nnew"]
    assert listed[1].size == 5 and listed[1].marks == "a" and listed[1].mode == 0o100600
    assert listed[2].target == b"y"


def test_format_1_is_read_and_upgraded():
    old = "\n".join(json.dumps(row) for row in [
        ["A", "home/me/caf\udce9.txt", "file", 4, 100],
        ["A", "home/me/dir", "dir", None, 100],
        ["D", "home/me/old", "gone", None, None]]).encode()
    for data in (old, fileindex.upgrade(old)):
        got = decode(data).entries()
        assert got[0] == Entry(b"home/me/caf\xe9.txt", "file", 4, 100)
        assert got[1].type == "dir" and got[2] == Entry(b"home/me/old", "gone", None, None)
    assert fileindex.upgrade(old).startswith(fileindex.MAGIC)
    assert decode(b"").paths == []


def test_only_keeps_what_a_filter_accepts():
    data = decode(delta(*(record("A", p, "file", 0o100644, "me", "me", 1, 1)
                          for p in (b"home/me", b"home/me/a.txt", b"home/meat", b"etc/x"))))
    assert data.only(fileindex.under("/home/me")).paths == [b"home/me", b"home/me/a.txt"]
    assert data.only(fileindex.under("/")) is data
    assert data.only(fileindex.matcher("*.txt")).paths == [b"home/me/a.txt"]
    assert data.only(fileindex.matcher("/home/**")).paths == [b"home/me", b"home/me/a.txt",
                                                              b"home/meat"]


def test_globs_match_as_before():
    name = fileindex.matcher("caf*")
    assert name(b"home/caf\xe9.txt") and not name(b"caf/x")
    assert not fileindex.matcher("a**b")(b"x/a/y/b")  # a name pattern stays in one name
    assert fileindex.matcher("a**b")(b"x/ab") and fileindex.matcher("a?c")(b"q/abc")
    assert fileindex.matcher("/home/*/x")(b"home/me/x")
    assert not fileindex.matcher("/home/*/x")(b"home/me/y/x")
    assert fileindex.matcher("/home/**/x")(b"home/me/y/x")
    assert fileindex.matcher("[!a]b")(b"cb") and not fileindex.matcher("[!a]b")(b"ab")
    assert fileindex.matcher("new*")(b"d/new\nline")


def test_names_are_shown_escaped_from_bytes_or_surrogates():
    assert fileindex.shown(b"home/caf\xe9 \\x.txt") == "/home/caf\\xe9 \\\\x.txt"
    assert fileindex.shown("home/caf\udce9") == "/home/caf\\xe9"
    assert fileindex.shown(b".") == "/" and fileindex.shown(b"a\tb\n") == "/a\\tb\\n"
    assert fileindex.shown("home/café".encode()) == "/home/café"


def test_filemode_is_ls_l():
    assert fileindex.filemode(0o100640) == "-rw-r-----"
    assert fileindex.filemode(0o42775) == "drwxrwsr-x"
    assert fileindex.filemode(0o104644) == "-rwSr--r--"
    assert fileindex.filemode(0o41777) == "drwxrwxrwt"
    assert fileindex.filemode(0o120777) == "lrwxrwxrwx"
    assert fileindex.filemode(0o10644) == "prw-r--r--"


def test_json_carries_type_mode_owner_target_and_marks():
    data = delta(record("A", b"home/l", "symlink", 0o120777, "me", "wheel", None, 5, "x",
                        b"../t\xff"))
    (got,) = decode(data).entries()
    assert got.as_json() == {"path": "/home/l", "type": "symlink", "size": None, "mtime": 5,
                             "mode": "lrwxrwxrwx", "owner": "me", "group": "wheel",
                             "target": "../t\\xff", "marks": ["xattr"]}
