"""The metadata files: every format parses back to what was written, for any byte names."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cya.core import metadata as m
from cya.core.metadata import (
    GROUP,
    GROUP_OBJ,
    MASK,
    OTHER,
    USER,
    USER_OBJ,
    AclEntry,
    FileAcl,
    FileTime,
    FileXattrs,
    FormatError,
    LinkGroup,
    SparseFile,
)

components = st.binary(min_size=1, max_size=10).filter(
    lambda part: b"/" not in part and b"\0" not in part and part not in (b".", b".."))
names = st.lists(components, min_size=1, max_size=4).map(b"/".join) | st.just(b".")
attribute_names = st.tuples(st.sampled_from([b"user.", b"trusted.", b"security.", b"system."]),
                            st.binary(min_size=1, max_size=12).filter(lambda n: b"\0" not in n)
                            ).map(b"".join)
perms = st.integers(0, 7)
ids = st.integers(0, 2**32 - 2)


@st.composite
def acls(draw, minimal: bool = False) -> tuple[AclEntry, ...]:
    """A valid ACL as the kernel keeps it: the three base entries, named users and groups
    with distinct ids, and a mask whenever there is a named entry."""
    users = sorted(draw(st.sets(ids, max_size=0 if minimal else 4)))
    groups = sorted(draw(st.sets(ids, max_size=0 if minimal else 4)))
    entries = [AclEntry(USER_OBJ, None, draw(perms))]
    entries += [AclEntry(USER, uid, draw(perms)) for uid in users]
    entries.append(AclEntry(GROUP_OBJ, None, draw(perms)))
    entries += [AclEntry(GROUP, gid, draw(perms)) for gid in groups]
    if users or groups:
        entries.append(AclEntry(MASK, None, draw(perms)))
    entries.append(AclEntry(OTHER, None, draw(perms)))
    return tuple(entries)


def numeric(number: int) -> str:
    return str(number)


@given(st.binary(max_size=40))
def test_quoted_names_hold_no_line_break_and_unquote_to_themselves(name):
    for quoted in (m.quote(name), m.quote_getfattr(name), m.quote_getfattr(name, b"=\n\r")):
        assert b"\n" not in quoted and b"\r" not in quoted
        assert m.unquote(quoted) == name
    assert b"=" not in m.quote_getfattr(name, b"=\n\r")


def test_quoting_is_the_tools_own():
    # as getfacl 2.3 and getfattr 2.5 print these names
    assert m.quote(b"d/bs\\x") == b"d/bs\\\\x"
    assert m.quote(b"d/n\nl") == b"d/n\\012l"
    assert m.quote_getfattr(b"d/bs\\x") == b"d/bs\\134x"
    assert m.quote_getfattr(b"user.we ird=\nx", b"=\n\r") == b"user.we ird\\075\\012x"
    assert m.quote(b"d/t\tab \xff=") == b"d/t\tab \xff="


@given(acls())
def test_acl_xattr_round_trips(entries):
    blob = m.encode_acl(entries)
    assert m.decode_acl(blob) == entries
    assert m.encode_acl(reversed(entries)) == blob  # the kernel's order whatever the input's


@given(acls(), acls())
def test_acl_text_round_trips(access, default):
    lines = (m.acl_lines(access, numeric, numeric)
             + m.acl_lines(default, numeric, numeric, default=True))
    assert m.acl_from_text(lines, int, int) == (access, default)


def test_a_real_acl_xattr_decodes_to_getfacl_text():
    # getfattr -e base64 of a directory after: setfacl -m u:daemon:r,m::r; setfacl -d -m g:daemon:rx
    access = base64.b64decode("AgAAAAEABwD/////AgAEAAEAAAAEAAUA/////xAABAD/////IAAFAP////8=")
    default = base64.b64decode(
        "AgAAAAEABwD/////BAAFAP////8IAAUAAQAAABAABQD/////IAAFAP////8=")
    names = {1: "daemon"}.get
    acl = m.file_acl(b"d/sub", 0o40745, "root", "root", m.decode_acl(access),
                     m.decode_acl(default), lambda uid: names(uid, str(uid)),
                     lambda gid: names(gid, str(gid)))
    assert m.format_acl_block(acl) == (
        b"# file: d/sub\n# owner: root\n# group: root\nuser::rwx\nuser:daemon:r--\n"
        b"group::r-x\t#effective:r--\nmask::r--\nother::r-x\ndefault:user::rwx\n"
        b"default:group::r-x\ndefault:group:daemon:r-x\ndefault:mask::r-x\n"
        b"default:other::r-x\n\n")


def test_base_only_acls_are_skipped_and_a_default_acl_alone_is_kept():
    base = m.base_acl(0o644)
    assert m.file_acl(b"f", 0o100644, "u", "g", base, (), numeric, numeric) is None
    assert m.file_acl(b"f", 0o100644, "u", "g", (), (), numeric, numeric) is None
    kept = m.file_acl(b"d", 0o43755, "u", "g", (), m.base_acl(0o750), numeric, numeric)
    assert kept.flags == 0o3000
    assert kept.lines[:3] == ("user::rwx", "group::r-x", "other::r-x")
    assert b"\n# flags: -st\n" in m.format_acl_block(kept)  # setgid and sticky, as getfacl


@given(st.lists(st.tuples(names, acls(), acls(), st.sampled_from([0, 0o4000, 0o2000, 0o1000,
                                                                     0o7000]))))
def test_acl_file_round_trips(files):
    written = []
    for name, access, default, flags in files:
        acl = m.file_acl(name, 0o100000 | flags | 0o640, "owner", "group", access, default,
                         numeric, numeric)
        if acl is not None:
            written.append(acl)
    parsed = m.parse_acls(m.format_acls(written))
    assert parsed == written


@given(st.lists(st.builds(FileXattrs, names, st.lists(
        st.tuples(attribute_names, st.binary(max_size=40)), min_size=1, max_size=4,
        unique_by=lambda pair: pair[0]).map(lambda pairs: tuple(sorted(pairs))))))
def test_xattr_file_round_trips(files):
    assert m.parse_xattrs(m.format_xattrs(files)) == files


def test_getfattr_text_and_hex_values_parse():
    text = (b"# file: d/a\nuser.empty=\"\"\nuser.hex=0x00ff10\nuser.text=\"hello\"\n"
            b"user.bare\n\n")
    (parsed,) = m.parse_xattrs(text)
    assert dict(parsed.attributes) == {b"user.empty": b"", b"user.hex": b"\x00\xff\x10",
                                       b"user.text": b"hello", b"user.bare": b""}


@given(st.lists(st.lists(names, min_size=2, max_size=4, unique=True).map(tuple)
                .map(LinkGroup)))
def test_link_file_round_trips(groups):
    assert m.parse_links(m.format_links(groups)) == groups


@st.composite
def sparse_files(draw) -> SparseFile:
    size = draw(st.integers(0, 2**50))
    cuts = sorted(draw(st.sets(st.integers(0, size), max_size=6)))
    extents = tuple((start, end - start) for start, end in zip(cuts[::2], cuts[1::2], strict=False)
                    if end > start)
    return SparseFile(draw(names), size, extents)


@given(st.lists(sparse_files()))
def test_sparse_file_round_trips(files):
    assert m.parse_sparse(m.format_sparse(files)) == files


@given(sparse_files())
def test_holes_and_data_tile_the_file(sparse):
    pieces = sorted([*sparse.data, *m.holes(sparse.size, sparse.data)])
    at = 0
    for offset, length in pieces:
        assert offset == at and length > 0
        at += length
    assert at == sparse.size


mtime_values = st.integers(-(2**62), 2**62)


@given(st.lists(st.builds(FileTime, names, mtime_values), unique_by=lambda time: time.name))
def test_time_file_round_trips(times):
    """One mtime per name; the names of one directory are written together."""
    assert dict(m.parse_times(m.format_times(times))) == dict(times)


def blocks_of(state: dict[bytes, int]) -> dict[bytes, bytes]:
    """``time_blocks`` of {name: mtime}, grouped as a walk groups them."""
    groups = []
    for name, mtime in state.items():
        directory, _, base = name.rpartition(b"/") if name != b"." else (b"", b"", b".")
        groups.append((directory, [(mtime, base)]))
    return m.time_blocks(groups)


@given(st.lists(st.dictionaries(names, mtime_values, max_size=12), min_size=2, max_size=5))
def test_appended_changes_give_each_state(states):
    """A file written afresh for the first state, then each later state's changes
    appended, reads back as the last state; an unchanged state appends nothing."""
    text = m.format_time_blocks(blocks_of(states[0]))
    for before, after in zip(states, states[1:], strict=False):
        changes = m.time_changes(blocks_of(before), blocks_of(after))
        assert (changes == b"") == (blocks_of(before) == blocks_of(after))
        text += changes
        assert dict(m.parse_times(text)) == after
    assert m.time_changes(blocks_of(states[-1]), blocks_of(states[-1])) == b""


def test_changes_keep_what_did_not_change_and_drop_what_went():
    before = {b"home/me/a": 1_500_000_000_000_000_001, b"home/me/b": 7,
              b"home/me/d/x": 3, b"home/other": 4}
    after = {b"home/me/a": 1_500_000_000_000_000_001, b"home/me/b": 8, b"home/me/c": 9,
             b"home/other": 4}
    changes = m.time_changes(blocks_of(before), blocks_of(after))
    assert changes == (b"# changes\n/home/me\n8 b\n9 c\n/home/me/d\n- x\n")
    assert dict(m.parse_times(m.format_time_blocks(blocks_of(before)) + changes)) == after


def test_mtime_format_1_still_reads():
    text = (b"# cya mtimes, format 1: <mtime nanoseconds> <name>\n"
            b"1600000000123456789 home/me/odd\\012name\n-5 .\n")
    assert m.parse_times(text) == [FileTime(b"home/me/odd\nname", 1_600_000_000_123_456_789),
                                   FileTime(b".", -5)]


def test_mtime_format_2_groups_by_directory_and_quotes_names():
    text = m.format_times([FileTime(b".", 1), FileTime(b"etc", 2), FileTime(b"etc/a b", 3),
                           FileTime(b"etc/new\nline", -4), FileTime(b"etc/x", 5)])
    assert text.split(b"\n")[1:] == [b"/", b"1 .", b"2 etc", b"/etc", b"3 a b",
                                      b"-4 new\\012line", b"5 x", b""]


def test_empty_sources_write_almost_nothing():
    everything = m.parse({
        m.ACL_FILE: m.format_acls([]), m.XATTR_FILE: m.format_xattrs([]),
        m.HARDLINK_FILE: m.format_links([]), m.SPARSE_FILE: m.format_sparse([]),
        m.MTIME_FILE: m.format_times([])})
    assert everything == m.Metadata()
    assert m.format_acls([]) == m.format_xattrs([]) == b""
    assert m.format_links([]).count(b"\n") == 1


@pytest.mark.parametrize("file, data", [
    (m.ACL_FILE, b"# file: ../etc/passwd\nuser::rw-\n\n"),
    (m.ACL_FILE, b"# file: /etc/passwd\nuser::rw-\n\n"),
    (m.ACL_FILE, b"# file: a//b\nuser::rw-\n\n"),
    (m.ACL_FILE, b"# file: a\nuser:x:rwz\n\n"),
    (m.ACL_FILE, b"user::rw-\n"),
    (m.XATTR_FILE, b"# file: a/./b\nuser.x=0sAA==\n\n"),
    (m.XATTR_FILE, b"# file: a\nuser.x=0s*\n\n"),
    (m.HARDLINK_FILE, b"# cya mtimes, format 1: <mtime nanoseconds> <name>\n1 a\n"),
    (m.HARDLINK_FILE, b"# cya hard-link groups, format 1: <group> <name>\nx a\n"),
    (m.SPARSE_FILE, b"# cya sparse files, format 1: ...\n10 0-4 a\n"),
    (m.MTIME_FILE, b"# cya mtimes, format 1: <mtime nanoseconds> <name>\n12\n"),
    (m.MTIME_FILE, b"# cya mtimes, format 3: who knows\n"),
    (m.MTIME_FILE, m.format_times([]) + b"12 a\n"),  # before any /<directory>
    (m.MTIME_FILE, m.format_times([]) + b"/etc\n12 a/b\n"),  # not one name
    (m.MTIME_FILE, m.format_times([]) + b"/etc\n12 .\n"),
    (m.MTIME_FILE, m.format_times([]) + b"/etc/../x\n12 a\n"),
    (m.MTIME_FILE, m.format_times([]) + b"/etc\n1x2 a\n"),
    (m.MTIME_FILE, m.format_times([]) + b"/etc\n12\n"),
])
def test_damaged_files_raise_naming_the_file(file, data):
    with pytest.raises(FormatError, match=file):
        m.parse({file: data})


def test_a_prefix_plan_renames_below_the_prefix_and_splits_link_groups():
    metadata = m.Metadata(
        acls=(FileAcl(b"home/me/x/f", "u", "g", 0, ("user::rw-",)),
              FileAcl(b"home/me/xy", "u", "g", 0, ("user::rw-",))),
        xattrs=(FileXattrs(b"home/me/x", ((b"user.a", b"1"),)),),
        links=(LinkGroup((b"home/me/x/a", b"home/me/b")),
               LinkGroup((b"home/me/x/c", b"home/me/x/d/e", b"home/other"))),
        sparse=(SparseFile(b"home/me/x/s", 10, ()),),
        times=(FileTime(b"home/me/x", 1), FileTime(b"home/me/x/d/e", 2),
               FileTime(b"home/me/x/d", 3), FileTime(b"home", 4)))
    plan = m.plan_apply(metadata, b"/home/me/x/")
    assert [acl.name for acl in plan.acls] == [b"f"]
    assert [x.name for x in plan.xattrs] == [b""]
    assert plan.links == (LinkGroup((b"c", b"d/e")),)
    assert plan.outside_links == 1
    assert [s.name for s in plan.sparse] == [b"s"]
    assert [t.name for t in plan.times] == [b"d/e", b"d", b""]  # contents before directories
    everything = m.plan_apply(metadata, b"")
    assert len(everything.links) == 2 and everything.times[-1].name == b"home"
