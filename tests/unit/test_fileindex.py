"""The per-backup file index (cya/core/fileindex.py): any name round-trips as bytes with
what ``ls`` shows of it, format 1 is still read, deltas apply in order, filtering commutes
with applying, searching a delta gives what splitting it gives, glob semantics, and how
names are shown."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cya.browse import FileLister
from cya.core import fileindex
from cya.core.fileindex import Delta, Entry, apply, decode, entries, matcher, record, shown, under

few = settings(max_examples=25)

# --- names ----------------------------------------------------------------------------------

# characters that make names hard: line breaks, backslashes, quotes, glob and regex syntax
AWKWARD = "\n\r\t\\'\" *?[]!.+()$^{}|#~-_é€"


text_components = st.text(alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters(
    blacklist_categories=("Cs",), blacklist_characters="/\0")), min_size=1, max_size=8)
byte_components = st.binary(min_size=1, max_size=8).filter(
    lambda b: b"/" not in b and b"\0" not in b).map(os.fsdecode)  # not UTF-8: lone surrogates
components = st.one_of(text_components, byte_components).filter(lambda c: c not in (".", ".."))
paths = st.lists(components, min_size=1, max_size=4).map("/".join)  # as str, like os.fsdecode
byte_paths = paths.map(os.fsencode)
kinds = st.sampled_from(["file", "dir", "symlink", "other"])


def delta(*records: bytes) -> Delta:
    return decode(fileindex.MAGIC + b"".join(records))


@st.composite
def changes(draw, pool=None):
    """One record: (change, Entry it stands for), over ``pool`` paths if given."""
    path = draw(st.sampled_from(pool) if pool else byte_paths)
    change = draw(st.sampled_from("AMD"))
    if change == "D":
        return change, Entry(path, "gone", None, None)
    kind = draw(kinds)
    entry = Entry(path, kind, draw(st.one_of(st.none(), st.integers(0, 2**63))),
                  draw(st.one_of(st.none(), st.integers(-2**40, 2**40))),
                  draw(st.integers(0, 0o177777)), draw(st.sampled_from(["me", "0", None])),
                  draw(st.sampled_from(["staff", "1000", None])),
                  draw(byte_paths) if kind == "symlink" else None,
                  draw(st.sampled_from(["", "a", "xh", "axhs"])))
    return change, entry


def encoded(change: str, entry: Entry) -> bytes:
    return record(change, entry.path, entry.type, entry.mode, entry.owner, entry.group,
                  entry.size, entry.mtime, entry.marks, entry.target)


@st.composite
def chains(draw):
    """Deltas over a small pool of paths, so that later deltas change and delete earlier
    paths."""
    pool = draw(st.lists(byte_paths, min_size=1, max_size=6, unique=True))
    return draw(st.lists(st.lists(changes(pool), max_size=8), max_size=5))


def as_deltas(chain) -> list[Delta]:
    return [delta(*(encoded(c, e) for c, e in changes)) for changes in chain]


def listed(files) -> dict[bytes, Entry]:
    return {e.path: e for e in entries(files)}


# --- format 2 round trip --------------------------------------------------------------------

@few
@given(st.lists(changes(), max_size=10))
@example([("A", Entry(b"caf\xe9/new\nline\\x.txt", "file", 3, 0, 0o100644, "me", "me", None,
                      "")),
          ("D", Entry(b"\xff\x80\xe2\x80\xa8\xc2\x85", "gone", None, None))])
def test_any_delta_round_trips(changes_):
    got = delta(*(encoded(c, e) for c, e in changes_))
    assert [m[:1].decode() for m in got.metas] == [c for c, _ in changes_]
    assert got.entries() == [e for _, e in changes_]


def test_unknown_fields_deleted_and_gone_records():
    data = delta(record("M", b"a", "file", 0o100640, None, None, None, None),
                 record("D", b"b", "gone"), record("A", b"c", "gone"))
    a, b, c = data.entries()
    assert a == Entry(b"a", "file", None, None, 0o100640, None, None, None, "")
    assert b == Entry(b"b", "gone", None, None) and c == Entry(b"c", "gone", None, None)


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


# --- apply ----------------------------------------------------------------------------------

@few
@given(chains())
def test_later_changes_win_and_a_deletion_removes(chain):
    files = listed(apply(as_deltas(chain)))
    last: dict[bytes, tuple[str, Entry]] = {}
    for changes_ in chain:
        for change, entry in changes_:
            last[entry.path] = (change, entry)
    assert files == {path: entry for path, (change, entry) in last.items() if change != "D"}


def test_apply_by_hand():
    full = delta(record("A", b".", "dir", 0o40755, "root", "root", None, 1),
                 record("A", b"x", "file", 0o100644, "me", "me", 3, 2),
                 record("A", b"y", "file", 0o100644, "me", "me", 4, 2))
    day = delta(record("D", b"x", "gone"),
                record("M", b"y", "file", 0o100600, "me", "me", 5, 3, "a"),
                record("A", b"z\nnew", "symlink", 0o120777, "me", "me", None, 3, "", b"y"),
                record("D", b"never/there", "gone"))
    got = entries(apply([full, day]))
    assert [e.path for e in got] == [b".", b"y", b"z\nnew"]
    assert got[1].size == 5 and got[1].marks == "a" and got[1].mode == 0o100600
    assert got[2].target == b"y"
    again = delta(record("A", b"x", "file", 0o100644, "me", "me", 3, 2))
    assert [e.path for e in entries(apply([full, day, again]))] == [b".", b"x", b"y", b"z\nnew"]
    assert apply([]) == {}


patterns = st.one_of(
    components,
    st.lists(st.one_of(components, st.sampled_from(["*", "**", "?", "*.txt", "[a-z]*", "[!a]"])),
             min_size=1, max_size=4).map("/".join),
    st.sampled_from(["*", "**", "**/*.txt", "/*", "/**", "?"]),
)


@few
@given(chains(), patterns)
def test_filtering_then_applying_equals_applying_then_filtering_for_a_glob(chain, pattern):
    keep = matcher(pattern)
    deltas = as_deltas(chain)
    assert apply(d.only(keep) for d in deltas) == {
        p: v for p, v in apply(deltas).items() if keep(p)}


@few
@given(chains(), st.data())
def test_filtering_then_applying_equals_applying_then_filtering_below_a_path(chain, data):
    every = sorted({e.path for changes_ in chain for _, e in changes_}) or [b"x"]
    path = data.draw(st.sampled_from(every), label="a path")
    parts = path.split(b"/")
    prefix = b"/".join(parts[:data.draw(st.integers(0, len(parts)), label="depth")])
    if data.draw(st.booleans(), label="absolute"):
        prefix = b"/" + prefix
    keep = under(prefix)
    deltas = as_deltas(chain)
    assert apply(d.only(keep) for d in deltas) == {
        p: v for p, v in apply(deltas).items() if keep(p)}


@few
@given(st.lists(byte_paths, max_size=12), patterns, byte_paths)
def test_a_whole_list_is_filtered_as_one_path_at_a_time(many, pattern, prefix):
    for keep in (matcher(pattern), under(prefix)):
        assert [bool(flag) for flag in keep.flags(many)] == [keep(path) for path in many]


# --- matcher --------------------------------------------------------------------------------

literal_components = components.filter(lambda c: not set(c) & set("*?["))
literal_paths = st.lists(literal_components, min_size=1, max_size=4).map("/".join)


def m(pattern: str):
    keep = matcher(pattern)
    return lambda path: keep(os.fsencode(path))


@few
@given(literal_paths, literal_paths)
def test_a_pattern_without_wildcards_matches_only_that_path(pattern, path):
    if "/" in pattern:
        assert m(pattern)(path) == (path == pattern)
        assert m("/" + pattern)(path) == (path == pattern)
        assert m(pattern)(pattern)
    else:  # like find -name: the last component
        assert m(pattern)(path) == (path.rsplit("/", 1)[-1] == pattern)
        assert m(pattern)("some/dir/" + pattern)


@few
@given(literal_paths, st.lists(literal_components, min_size=1, max_size=3))
def test_a_star_stays_within_one_component(directory, rest):
    path = directory + "/" + "/".join(rest)
    assert m(directory + "/*")(path) == (len(rest) == 1)
    assert m("/" + directory + "/*")(path) == (len(rest) == 1)
    assert not m(directory + "?" + "/".join(rest))(path)  # ? never takes a /


def test_glob_semantics_by_hand():
    assert m("*.txt")("home/me/a.txt") and not m("*.txt")("home/a.txt/b")
    assert m("a.txt")("home/me/a.txt") and not m("me")("home/me/a.txt")
    assert m("home/*")("home/me") and not m("home/*")("home/me/a.txt")
    assert m("home/**")("home/me/a.txt") and m("/home/**")("home/me/a.txt")
    assert m("home/**/a.txt")("home/me/deep/a.txt") and not m("home/**/a.txt")("home/a.txt")
    assert m("**/a.txt")("home/me/a.txt") and m("**")("anything/at/all")
    assert m("home/me/?.txt")("home/me/a.txt") and not m("home/me/?.txt")("home/me/ab.txt")
    assert m("[ab].txt")("x/b.txt") and not m("[ab].txt")("x/c.txt")
    assert m("[!ab].txt")("x/c.txt") and not m("[!ab].txt")("x/a.txt")
    assert m("a+b(c).txt")("x/a+b(c).txt") and not m("a+b(c).txt")("x/aab(c).txt")
    assert m("[x")("d/[x") and not m("[x")("d/x")  # an unclosed class is literal
    assert m("home/me/a.txt")("home/me/a.txt") and not m("home/me/a.txt")("home/me/a.txt2")
    assert m("caf\udce9*")("home/caf\udce9.txt")  # a name that is not UTF-8
    assert not m("a**b")("x/a/y/b")  # a name pattern stays in one name
    assert m("a**b")("x/ab") and m("new*")("d/new\nline")


@few
@given(literal_paths, st.lists(literal_components, min_size=1, max_size=3))
@example("home", ["me", "new\nline.txt"])
@example("home", ["new\ndir", "a.txt"])
def test_two_stars_cross_components(directory, rest):
    path = directory + "/" + "/".join(rest)
    assert m(directory + "/**")(path)
    assert m("**/" + rest[-1])(path)
    assert not m(directory + "/**")(directory + "x/" + rest[0])


# --- under ----------------------------------------------------------------------------------

@few
@given(paths, paths)
def test_under_a_path(prefix, path):
    below = path == prefix or path.startswith(prefix + "/")
    raw = os.fsencode(path)
    assert under(prefix)(raw) == below
    assert under("/" + prefix)(raw) == below
    assert under(prefix + "/")(raw) == below
    assert under(os.fsencode(prefix))(raw) == below
    assert under(prefix)(os.fsencode(prefix + "/" + path))
    for everything in ("", "/", "."):
        assert under(everything)(raw)


# --- shown ----------------------------------------------------------------------------------

def test_shown_by_hand():
    assert shown(".") == shown(b".") == "/"
    assert shown("home/me/a.txt") == shown(b"home/me/a.txt") == "/home/me/a.txt"
    assert shown("home/café €.txt") == "/home/café €.txt"  # printable text is left alone
    assert shown("caf\udce9.txt") == shown(b"caf\xe9.txt") == "/caf\\xe9.txt"
    assert shown("new\nline") == "/new\\nline"
    assert shown("back\\slash") == "/back\\\\slash"
    assert shown("tab\there\r") == "/tab\\there\\r"
    assert shown("bell\x07") == "/bell\\x07"
    assert shown("sep\u2028") == "/sep\\u2028"
    assert shown("it's \"quoted\"") == "/it's \"quoted\""


@few
@given(paths)
def test_shown_is_one_printable_line(path):
    text = shown(path)
    assert text == shown(os.fsencode(path))
    assert text.startswith("/")
    assert text.isprintable() and "\n" not in text
    assert text.encode("utf-8")  # no lone surrogate reaches a terminal


# every character the docstring names an escape for, and printable ones
documented = st.one_of(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp", "Zs"),
                  blacklist_characters="/\0"),
    st.sampled_from(" \n\t\r\\\x01\x1b\x7f"),
    st.integers(0x80, 0xFF).map(lambda b: chr(0xDC00 + b)))  # a byte that is not UTF-8
documented_paths = st.lists(st.text(alphabet=documented, min_size=1, max_size=6),
                            min_size=1, max_size=3).map("/".join)


@settings(max_examples=60)
@given(documented_paths, documented_paths)
@example("a\\nb", "a\nb")
@example("\\xe9", "\udce9")
@example("a\\\\", "a\\")
def test_two_names_never_show_the_same(one, other):
    if one != other:
        assert shown(one) != shown(other)


@few
@given(paths, paths)
@example("caf\x85", "caf\udc85")  # UTF-8 bytes c2 85 / the single byte 85
@example("nb\xa0sp", "nb\udca0sp")
@example("\U000e0001", "\ue0001")  # a tag character / a private-use character, then "1"
def test_two_names_never_show_the_same_whatever_they_hold(one, other):
    if one != other:
        assert shown(one) != shown(other)


# --- what ls shows --------------------------------------------------------------------------

def test_filemode_is_ls_l():
    assert fileindex.filemode(0o100640) == "-rw-r-----"
    assert fileindex.filemode(0o42775) == "drwxrwsr-x"
    assert fileindex.filemode(0o104644) == "-rwSr--r--"
    assert fileindex.filemode(0o41777) == "drwxrwxrwt"
    assert fileindex.filemode(0o120777) == "lrwxrwxrwx"
    assert fileindex.filemode(0o10644) == "prw-r--r--"


def test_json_carries_type_mode_owner_target_and_marks():
    (got,) = delta(record("A", b"home/l", "symlink", 0o120777, "me", "wheel", None, 5, "x",
                          b"../t\xff")).entries()
    assert got.as_json() == {"path": "/home/l", "type": "symlink", "size": None,
                             "mtime": "1970-01-01T00:00:05Z",
                             "mode": "lrwxrwxrwx", "owner": "me", "group": "wheel",
                             "target": "../t\\xff", "marks": ["xattr"]}


# --- select: searching a delta instead of splitting it ----------------------------------------

def as_data(changes_) -> bytes:
    return fileindex.MAGIC + b"".join(encoded(c, e) for c, e in changes_)


def same(one: Delta, other: Delta) -> bool:
    return (one.metas, one.paths, one.targets) == (other.metas, other.paths, other.targets)


@settings(max_examples=60)
@given(st.lists(changes(), max_size=10), patterns, byte_paths, st.integers(0, 40))
def test_select_is_decode_then_only(changes_, pattern, prefix, padding):
    data = as_data(changes_)
    for keep in (matcher(pattern), under(prefix), under(b"")):
        assert same(fileindex.select(data, keep), decode(data).only(keep))
    # a long delta of other paths: the search, not the split, answers
    filler = [("A", Entry(b"filler/f%04d" % n, "file", 1, 1, 0o100644, "me", "me", None, ""))
              for n in range(padding * 50)]
    data = as_data(filler + changes_ + filler)
    for keep in (matcher(pattern), under(prefix)):
        assert same(fileindex.select(data, keep), decode(data).only(keep))


def test_select_tells_a_path_from_an_owner_or_a_target_holding_the_same_text():
    records = [record("A", b"home", "dir", 0o40755, "home", "home", None, 1),
               record("A", b"home/link", "symlink", 0o120777, "me", "me", None, 2, "",
                      b"home/target.txt"),
               record("A", b"home/target.txt", "file", 0o100644, "me", "me", 4, 2),
               record("D", b"x/target.txt", "gone"),
               record("A", b"target.txt.d", "dir", 0o40700, "me", "target.txt", None, 3)]
    data = fileindex.MAGIC + b"".join(records) + b"".join(
        record("A", b"other/f%05d" % n, "file", 0o100644, "me", "me", 1, 1)
        for n in range(5000))
    for keep in (matcher("target.txt"), matcher("/home/*"), under("/home"),
                 matcher("**/target.txt"), under("home/target.txt")):
        assert same(fileindex.select(data, keep), decode(data).only(keep))
    assert fileindex.select(data, matcher("target.txt")).paths == [b"home/target.txt",
                                                                    b"x/target.txt"]
    assert fileindex.select(data, under("/home")).paths == [b"home", b"home/link",
                                                            b"home/target.txt"]


def test_select_reads_format_1_and_empty_deltas():
    old = json.dumps(["A", "home/me/a.txt", "file", 4, 100]).encode()
    assert decode(old).paths == fileindex.select(old, matcher("a.txt")).paths == [
        b"home/me/a.txt"]
    assert fileindex.select(fileindex.MAGIC, under("home")).paths == []


class _Catalog:
    """The index rows a FileLister reads, without SQLite."""

    def __init__(self, rows: dict[str, tuple[str | None, bytes]]):
        self.rows = rows

    def index_links(self):
        return {time: parent for time, (parent, _) in self.rows.items()}

    def parents(self):
        return self.index_links()

    def index_delta(self, time):
        return self.rows[time][1]


@few
@given(chains(), patterns)
def test_a_lister_extending_the_last_chain_gives_what_applying_afresh_gives(chain, pattern):
    data = [as_data(changes_) for changes_ in chain] or [fileindex.MAGIC]
    times = [f"T{n}" for n in range(len(data))]
    rows = {time: (times[n - 1] if n else None, blob)
            for n, (time, blob) in enumerate(zip(times, data, strict=True))}
    rows["B"] = (times[0], data[-1])  # a branch off the first backup
    settings = SimpleNamespace(archive=SimpleNamespace(enabled=False))
    keep = matcher(pattern)
    lister = FileLister(None, _Catalog(rows), settings, keep)
    for last in [*times, "B", times[-1], times[0]]:
        wanted = lister.chain(last)
        expected = apply(decode(rows[time][1]).only(keep) for time in wanted)
        assert lister.applied(wanted) == expected
