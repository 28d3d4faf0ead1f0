"""The per-backup file index (cya/core/fileindex.py): any name round-trips, deltas apply in
order, filtering commutes with applying, glob semantics, and how names are shown."""

from __future__ import annotations

import os

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cya.core.fileindex import Change, Entry, apply, decode, encode, matcher, shown, under

few = settings(max_examples=25)

# --- names ----------------------------------------------------------------------------------

# characters that make names hard: line breaks, backslashes, quotes, glob and regex syntax
AWKWARD = "\n\r\t\\'\" *?[]!.+()$^{}|#~-_é€"


def no_slash_or_nul(text: str) -> bool:
    return "/" not in text and "\0" not in text


text_components = st.text(alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters(
    blacklist_categories=("Cs",), blacklist_characters="/\0")), min_size=1, max_size=8)
byte_components = st.binary(min_size=1, max_size=8).filter(
    lambda b: b"/" not in b and b"\0" not in b).map(os.fsdecode)  # not UTF-8: lone surrogates
components = st.one_of(text_components, byte_components).filter(lambda c: c not in (".", ".."))
paths = st.lists(components, min_size=1, max_size=4).map("/".join)
entries = st.builds(Entry, paths, st.sampled_from(["file", "dir", "symlink", "other", "gone"]),
                    st.one_of(st.none(), st.integers(0, 2**63)),
                    st.one_of(st.none(), st.integers(-2**40, 2**40)))
changes = st.builds(Change, st.sampled_from("AMD"), entries)


@st.composite
def chains(draw):
    """Deltas over a small pool of paths, so that later deltas change and delete earlier
    paths."""
    pool = draw(st.lists(paths, min_size=1, max_size=6, unique=True))
    entry = st.builds(Entry, st.sampled_from(pool), st.sampled_from(["file", "dir", "symlink"]),
                      st.integers(0, 10**6), st.integers(0, 2**31))
    return draw(st.lists(st.lists(st.builds(Change, st.sampled_from("AMD"), entry),
                                  max_size=8), max_size=5))


# --- encode / decode ------------------------------------------------------------------------

@few
@given(st.lists(changes, max_size=10))
@example([Change("A", Entry("caf\udce9/new\nline\\x.txt", "file", 3, 0)),
          Change("D", Entry("\udcff\udc80\u2028\x85", "gone", None, None))])
def test_any_delta_round_trips(delta):
    data = encode(delta)
    assert data.isascii()  # a name that is not UTF-8 travels as escaped surrogates
    assert data.count(b"\n") == max(len(delta) - 1, 0)  # one line per change
    assert decode(data) == delta
    for change in decode(data):
        os.fsencode(change.entry.path)  # still the exact bytes of a file name


# --- apply ----------------------------------------------------------------------------------

@few
@given(chains())
def test_later_changes_win_and_a_deletion_removes(chain):
    files = apply(chain)
    last: dict[str, Change] = {}
    for delta in chain:
        for change in delta:
            last[change.entry.path] = change
    assert files == {path: change.entry for path, change in last.items()
                     if change.change != "D"}


def test_apply_by_hand():
    a1, a2 = Entry("a", "file", 1, 10), Entry("a", "file", 2, 20)
    b = Entry("d/b", "file", 5, 10)
    chain = [[Change("A", a1), Change("A", b)], [Change("M", a2)], [Change("D", b)],
             [Change("D", Entry("never/there", "gone", None, None))]]
    assert apply(chain) == {"a": a2}
    assert apply(chain[:2]) == {"a": a2, "d/b": b}
    assert apply([[Change("A", b)], [Change("D", b)], [Change("A", b)]]) == {"d/b": b}
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
    assert apply(chain, keep) == {p: e for p, e in apply(chain).items() if keep(p)}


@few
@given(chains(), st.data())
def test_filtering_then_applying_equals_applying_then_filtering_below_a_path(chain, data):
    every = sorted({c.entry.path for delta in chain for c in delta}) or ["x"]
    path = data.draw(st.sampled_from(every), label="a path")
    parts = path.split("/")
    prefix = "/".join(parts[:data.draw(st.integers(0, len(parts)), label="depth")])
    if data.draw(st.booleans(), label="absolute"):
        prefix = "/" + prefix
    keep = under(prefix)
    assert apply(chain, keep) == {p: e for p, e in apply(chain).items() if keep(p)}


# --- matcher --------------------------------------------------------------------------------

literal_components = components.filter(lambda c: not set(c) & set("*?["))
literal_paths = st.lists(literal_components, min_size=1, max_size=4).map("/".join)


@few
@given(literal_paths, literal_paths)
def test_a_pattern_without_wildcards_matches_only_that_path(pattern, path):
    if "/" in pattern:
        assert matcher(pattern)(path) == (path == pattern)
        assert matcher("/" + pattern)(path) == (path == pattern)
        assert matcher(pattern)(pattern)
    else:  # like find -name: the last component
        assert matcher(pattern)(path) == (path.rsplit("/", 1)[-1] == pattern)
        assert matcher(pattern)("some/dir/" + pattern)


@few
@given(literal_paths, st.lists(literal_components, min_size=1, max_size=3))
def test_a_star_stays_within_one_component(directory, rest):
    path = directory + "/" + "/".join(rest)
    assert matcher(directory + "/*")(path) == (len(rest) == 1)
    assert matcher("/" + directory + "/*")(path) == (len(rest) == 1)
    assert matcher(directory + "/?" + rest[0][1:])(directory + "/" + rest[0])
    assert not matcher(directory + "?" + "/".join(rest))(path)  # ? never takes a /


def test_glob_semantics_by_hand():
    m = matcher
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


@few
@given(literal_paths, st.lists(literal_components, min_size=1, max_size=3))
@example("home", ["me", "new\nline.txt"])
@example("home", ["new\ndir", "a.txt"])
def test_two_stars_cross_components(directory, rest):
    path = directory + "/" + "/".join(rest)
    assert matcher(directory + "/**")(path)
    assert matcher("**/" + rest[-1])(path)
    assert not matcher(directory + "/**")(directory + "x/" + rest[0])


# --- under ----------------------------------------------------------------------------------

@few
@given(paths, paths)
def test_under_a_path(prefix, path):
    below = path == prefix or path.startswith(prefix + "/")
    assert under(prefix)(path) == below
    assert under("/" + prefix)(path) == below
    assert under(prefix + "/")(path) == below
    assert under(prefix)(prefix + "/" + path)
    for everything in ("", "/", "."):
        assert under(everything)(path)


# --- shown ----------------------------------------------------------------------------------

def test_shown_by_hand():
    assert shown(".") == "/"
    assert shown("home/me/a.txt") == "/home/me/a.txt"
    assert shown("home/café €.txt") == "/home/café €.txt"  # printable text is left alone
    assert shown("caf\udce9.txt") == "/caf\\xe9.txt"  # b"caf\xe9.txt"
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
