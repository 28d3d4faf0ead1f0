"""The metadata duplicity loses, as text: parse, format, and plan its re-application.

duplicity restores content, permission bits, owner, mtime to the second,
symlinks, FIFOs and empty directories. Everything else a file system keeps is
recorded by cya in a metadata directory that travels inside the same backup,
so a restore of any backup finds the metadata exactly as of that backup. The
directory holds six files; every name in them is relative to ``/``
(``home/me/x``; the root itself is ``.``), so ``cd TARGET`` after a plain
``duplicity restore`` puts each name on its restored file:

``acl.txt``
    POSIX ACLs as ``getfacl --recursive --skip-base --physical`` prints them
    (run in ``/``): ``cd TARGET && setfacl --restore=acl.txt``.
``xattr.txt``
    Extended attributes (``user.*``, ``trusted.*``, ``security.*``, other
    ``system.*``; the ACLs' ``system.posix_acl_*`` are in ``acl.txt``) as
    ``getfattr --dump --match=- --encoding=base64 --no-dereference`` prints
    them: ``cd TARGET && setfattr --no-dereference --restore=xattr.txt``.
``hardlinks.txt``
    One line per name of a regular file that shares its inode with another
    name in the sources: ``<group> <name>``; names with one group number are
    one inode.
``sparse.txt``
    One line per file with holes: ``<size> <data> <name>``, ``<data>`` being
    the file's data extents ``offset+length,...`` (``-`` for none); every
    other byte of the file is a hole.
``mtimes.txt``
    The mtime in nanoseconds of every entry whose mtime has a non-zero
    sub-second part, and of every symlink, grouped by directory: a line
    ``/<directory>`` (``/`` for the root), then ``<mtime nanoseconds> <name>``
    for entries of that directory, ``<name>`` one component (``.`` under ``/``
    stands for the root itself); ``- <name>`` says the entry has no recorded
    mtime any more. Later lines win. Format 1 (``<mtime nanoseconds> <name>``
    with the whole name) is still read.
``mtimes-changes.txt``
    What changed since ``mtimes.txt`` was written, in the same lines: each
    backup appends its changes after a ``# changes`` line; read after
    ``mtimes.txt``, so its lines win. ``mtimes.txt`` stays as it is (duplicity
    then skips it, where a delta of the whole file cost about a second a day at
    100,000 files, and stores only the appended lines of this one); once the
    changes pass a quarter of ``mtimes.txt``, that is written afresh and this
    file emptied. (Older versions appended the changes
    to ``mtimes.txt`` itself; such a file still reads the same.)

Each of cya's own three files starts with a ``# cya ...`` line naming its
format and version; other lines starting with ``#`` are comments. Names are
bytes and are written as getfacl writes them (a backslash as ``\\``, a
newline or carriage return as ``\\012``/``\\015``) in ``acl.txt`` and cya's
own files, as getfattr writes them (backslash ``\\134``) in ``xattr.txt``;
both parsers read either. A name is always the last field of its line, so
spaces in names need no escape. Only what differs from the default is
written: a source without ACLs, xattrs, links, holes or sub-second times gives
files of one header line or none.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

FORMAT_VERSION = 1
ACL_FILE = "acl.txt"
XATTR_FILE = "xattr.txt"
HARDLINK_FILE = "hardlinks.txt"
SPARSE_FILE = "sparse.txt"
MTIME_FILE = "mtimes.txt"
MTIME_CHANGES_FILE = "mtimes-changes.txt"
ALL_FILES = (ACL_FILE, XATTR_FILE, HARDLINK_FILE, SPARSE_FILE, MTIME_FILE, MTIME_CHANGES_FILE)

ACL_ACCESS = b"system.posix_acl_access"
ACL_DEFAULT = b"system.posix_acl_default"

_HARDLINK_HEADER = f"# cya hard-link groups, format {FORMAT_VERSION}: <group> <name>"
_SPARSE_HEADER = (f"# cya sparse files, format {FORMAT_VERSION}: "
                  "<size> <data extents offset+length,... or -> <name>")
_MTIME_HEADER_1 = "# cya mtimes, format 1: <mtime nanoseconds> <name>"
MTIME_FORMAT = 2
_MTIME_HEADER = (f"# cya mtimes, format {MTIME_FORMAT}: /<dir>, then <mtime ns> <name> "
                 "or - <name>; later lines win")
_CHANGES = b"# changes"


class FormatError(ValueError):
    """A metadata file (or an ACL blob) that does not parse; the message names the line."""


# ---------------------------------------------------------------------------
# Names


_SPECIAL = {b"\n\r": re.compile(rb"[\\\n\r]"), b"=\n\r": re.compile(rb"[\\=\n\r]")}


def quote(name: bytes, octal: bytes = b"\n\r", backslash: bytes = b"\\\\") -> bytes:
    """``name`` escaped as getfacl escapes file names: each byte of ``octal`` as
    ``\\ooo``, a backslash as ``backslash`` (getfacl ``\\\\``, getfattr ``\\134``)."""
    special = _SPECIAL.get(octal) or re.compile(b"[" + re.escape(b"\\" + octal) + b"]")
    if special.search(name) is None:
        return name  # the common case: one search at C speed (100,000 names a backup)
    out = bytearray()
    for byte in name:
        if byte == 0x5C:
            out += backslash
        elif byte in octal:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out)


def quote_getfattr(name: bytes, octal: bytes = b"\n\r") -> bytes:
    return quote(name, octal, b"\\134")


_ESCAPE = re.compile(rb"\\(\\|[0-3][0-7][0-7])")


def unquote(text: bytes) -> bytes:
    """The bytes a quoted name stands for (``\\\\`` and ``\\ooo``; a lone backslash stays)."""
    if b"\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1), 8)]),
                       text)


def check_name(name: bytes) -> None:
    """Raise FormatError unless ``name`` is relative to ``/`` and stays below it
    (no empty, ``.`` or ``..`` component; the root itself is ``.``)."""
    if name == b".":
        return
    if not name or name.startswith(b"/") or b"\0" in name:
        raise FormatError(f"not a relative name: {name!r}")
    for part in name.split(b"/"):
        if part in (b"", b".", b".."):
            raise FormatError(f"not a plain relative name: {name!r}")


def relative_to(name: bytes, prefix: bytes) -> bytes | None:
    """Where ``name`` lands in a restore of ``prefix``: ``b""`` for the prefix itself, the
    rest of the name below it, or None when the name lies outside (prefix ``b""``: all)."""
    if not prefix or prefix == b".":
        return b"" if name == b"." else name
    if name == prefix:
        return b""
    if name.startswith(prefix + b"/"):
        return name[len(prefix) + 1:]
    return None


# ---------------------------------------------------------------------------
# POSIX ACLs: the kernel's binary xattr and getfacl's text

USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
_ACL_VERSION = 2
_TAG_WORDS = {USER_OBJ: "user", USER: "user", GROUP_OBJ: "group", GROUP: "group",
              MASK: "mask", OTHER: "other"}
_NAMED = (USER, GROUP)


@dataclass(frozen=True, order=True)
class AclEntry:
    tag: int  # USER_OBJ, USER, GROUP_OBJ, GROUP, MASK or OTHER
    qualifier: int | None  # the uid or gid of a USER or GROUP entry, else None
    perm: int  # read 4, write 2, execute 1


def decode_acl(blob: bytes) -> tuple[AclEntry, ...]:
    """The entries of a ``system.posix_acl_access``/``default`` xattr value, in the order
    the kernel keeps them. Raise FormatError if it is not a version-2 ACL."""
    if len(blob) < 4 or (len(blob) - 4) % 8:
        raise FormatError(f"an ACL xattr of {len(blob)} bytes")
    if int.from_bytes(blob[:4], "little") != _ACL_VERSION:
        raise FormatError("an ACL xattr of an unknown version")
    entries = []
    for at in range(4, len(blob), 8):
        tag = int.from_bytes(blob[at:at + 2], "little")
        perm = int.from_bytes(blob[at + 2:at + 4], "little")
        ident = int.from_bytes(blob[at + 4:at + 8], "little")
        if tag not in _TAG_WORDS or perm > 7:
            raise FormatError(f"an ACL entry with tag {tag:#x} and permissions {perm:#o}")
        entries.append(AclEntry(tag, ident if tag in _NAMED else None, perm))
    return tuple(entries)


def encode_acl(entries: Iterable[AclEntry]) -> bytes:
    """The xattr value the kernel takes for ``entries`` (sorted as the kernel wants them)."""
    out = bytearray(_ACL_VERSION.to_bytes(4, "little"))
    for entry in sorted(entries, key=lambda e: (e.tag, -1 if e.qualifier is None
                                                else e.qualifier)):
        ident = _UNDEFINED_ID if entry.qualifier is None else entry.qualifier
        out += entry.tag.to_bytes(2, "little") + entry.perm.to_bytes(2, "little")
        out += ident.to_bytes(4, "little")
    return bytes(out)


def base_acl(mode: int) -> tuple[AclEntry, ...]:
    """The three entries a file without an access ACL has: its permission bits."""
    return (AclEntry(USER_OBJ, None, (mode >> 6) & 7), AclEntry(GROUP_OBJ, None, (mode >> 3) & 7),
            AclEntry(OTHER, None, mode & 7))


def is_base(entries: Sequence[AclEntry]) -> bool:
    return all(entry.tag in (USER_OBJ, GROUP_OBJ, OTHER) for entry in entries)


def perm_text(perm: int) -> str:
    return ("r" if perm & 4 else "-") + ("w" if perm & 2 else "-") + ("x" if perm & 1 else "-")


def _perm_value(text: str, line: str) -> int:
    perm = 0
    for char in text:
        if char in "rwx":
            perm |= {"r": 4, "w": 2, "x": 1}[char]
        elif char != "-":
            raise FormatError(f"bad permissions in ACL line {line!r}")
    return perm


def acl_lines(entries: Sequence[AclEntry], user_name: Callable[[int], str],
              group_name: Callable[[int], str], default: bool = False) -> list[str]:
    """``entries`` as getfacl prints them, ``#effective:`` comments included, each
    qualifier through ``user_name``/``group_name`` (a name, or the number as text)."""
    mask = next((entry.perm for entry in entries if entry.tag == MASK), None)
    lines = []
    for entry in entries:
        word = _TAG_WORDS[entry.tag]
        qualifier = ""
        if entry.tag == USER:
            qualifier = user_name(entry.qualifier or 0)
        elif entry.tag == GROUP:
            qualifier = group_name(entry.qualifier or 0)
        line = f"{'default:' if default else ''}{word}:{qualifier}:{perm_text(entry.perm)}"
        if mask is not None and entry.tag in (USER, GROUP_OBJ, GROUP) and entry.perm & ~mask:
            line += f"\t#effective:{perm_text(entry.perm & mask)}"
        lines.append(line)
    return lines


def acl_from_text(lines: Iterable[str], user_id: Callable[[str], int],
                  group_id: Callable[[str], int]) -> tuple[tuple[AclEntry, ...],
                                                           tuple[AclEntry, ...]]:
    """The access and default entries of getfacl/setfacl text lines (long or short
    tags, ``#`` comments ignored). ``user_id``/``group_id`` turn a qualifier into a
    number and raise LookupError when they cannot; raise FormatError for a bad line."""
    access: list[AclEntry] = []
    default: list[AclEntry] = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(":")
        into = access
        if parts[0] in ("default", "d") and len(parts) == 4:
            into = default
            parts = parts[1:]
        if len(parts) != 3:
            raise FormatError(f"bad ACL line {raw!r}")
        word, qualifier, perms = parts
        perm = _perm_value(perms, raw)
        if word in ("user", "u"):
            entry = (AclEntry(USER, user_id(qualifier), perm) if qualifier
                     else AclEntry(USER_OBJ, None, perm))
        elif word in ("group", "g"):
            entry = (AclEntry(GROUP, group_id(qualifier), perm) if qualifier
                     else AclEntry(GROUP_OBJ, None, perm))
        elif word in ("mask", "m") and not qualifier:
            entry = AclEntry(MASK, None, perm)
        elif word in ("other", "o") and not qualifier:
            entry = AclEntry(OTHER, None, perm)
        else:
            raise FormatError(f"bad ACL line {raw!r}")
        into.append(entry)
    return tuple(access), tuple(default)


@dataclass(frozen=True)
class FileAcl:
    """One file's block in ``acl.txt``. ``access`` is empty when the file has no access
    ACL (its permission bits stand for it); ``lines`` are the entry lines as written."""

    name: bytes
    owner: str
    group: str
    flags: int  # the setuid, setgid and sticky bits (0o7000)
    lines: tuple[str, ...]


def file_acl(name: bytes, mode: int, owner: str, group: str, access: Sequence[AclEntry],
             default: Sequence[AclEntry], user_name: Callable[[int], str],
             group_name: Callable[[int], str]) -> FileAcl | None:
    """The ``acl.txt`` block of a file with permission bits ``mode`` and the decoded
    ACL xattrs, or None when getfacl ``--skip-base`` would skip it (base ACL only)."""
    if (not access or is_base(access)) and not default:
        return None
    entries = access or base_acl(mode)
    lines = acl_lines(entries, user_name, group_name)
    lines += acl_lines(default, user_name, group_name, default=True)
    return FileAcl(name, owner, group, mode & 0o7000, tuple(lines))


def format_acl_block(acl: FileAcl) -> bytes:
    out = [b"# file: " + quote(acl.name), f"# owner: {acl.owner}".encode(),
           f"# group: {acl.group}".encode()]
    if acl.flags:
        flags = ("s" if acl.flags & 0o4000 else "-") + ("s" if acl.flags & 0o2000 else "-") \
            + ("t" if acl.flags & 0o1000 else "-")
        out.append(f"# flags: {flags}".encode())
    out += [line.encode() for line in acl.lines]
    return b"\n".join(out) + b"\n\n"


def format_acls(acls: Iterable[FileAcl]) -> bytes:
    """``acl.txt``: the blocks getfacl -R -s prints, one per file."""
    return b"".join(format_acl_block(acl) for acl in acls)


def _blocks(data: bytes, kind: str) -> Iterable[tuple[bytes, list[bytes]]]:
    """The ``# file:`` blocks of getfacl/getfattr output: (quoted name, other lines)."""
    name: bytes | None = None
    lines: list[bytes] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.startswith(b"# file: "):
            if name is not None:
                yield name, lines
            name, lines = line[len(b"# file: "):], []
        elif not line:
            if name is not None:
                yield name, lines
            name, lines = None, []
        elif name is None:
            if not line.startswith(b"#"):
                raise FormatError(f"{kind} line {number} is outside a '# file:' block")
        else:
            lines.append(line)
    if name is not None:
        yield name, lines


def parse_acls(data: bytes) -> list[FileAcl]:
    """The blocks of ``acl.txt`` (or of any ``getfacl`` output). Raise FormatError for
    a block with a bad name, flag or entry line."""
    acls = []
    for quoted, lines in _blocks(data, "acl.txt"):
        name = unquote(quoted)
        check_name(name)
        owner = group = ""
        flags = 0
        entries = []
        for line in lines:
            text = line.decode("utf-8", "surrogateescape")
            if text.startswith("# owner: "):
                owner = text[len("# owner: "):]
            elif text.startswith("# group: "):
                group = text[len("# group: "):]
            elif text.startswith("# flags: "):
                value = text[len("# flags: "):]
                if not re.fullmatch(r"[s-][s-][t-]", value):
                    raise FormatError(f"bad flags line {text!r}")
                flags = (0o4000 if value[0] == "s" else 0) | (0o2000 if value[1] == "s" else 0) \
                    | (0o1000 if value[2] == "t" else 0)
            elif not text.startswith("#"):
                acl_from_text([text], lambda q: 0, lambda q: 0)  # checks the line's syntax
                entries.append(text)
        acls.append(FileAcl(name, owner, group, flags, tuple(entries)))
    return acls


# ---------------------------------------------------------------------------
# Extended attributes: getfattr --dump --encoding=base64


@dataclass(frozen=True)
class FileXattrs:
    name: bytes
    attributes: tuple[tuple[bytes, bytes], ...]  # (attribute name, value), sorted by name


def format_xattr_block(xattrs: FileXattrs) -> bytes:
    out = [b"# file: " + quote_getfattr(xattrs.name)]
    for attribute, value in xattrs.attributes:
        out.append(quote_getfattr(attribute, b"=\n\r") + b"=0s" + base64.b64encode(value))
    return b"\n".join(out) + b"\n\n"


def format_xattrs(files: Iterable[FileXattrs]) -> bytes:
    """``xattr.txt``: the blocks getfattr -R -d -m - -e base64 prints, one per file."""
    return b"".join(format_xattr_block(xattrs) for xattrs in files)


def _value(text: bytes, line: bytes) -> bytes:
    """An xattr value as getfattr encodes it: 0s base64, 0x hex, or "quoted text"."""
    try:
        if text[:2] in (b"0s", b"0S"):
            return base64.b64decode(text[2:], validate=True)
        if text[:2] in (b"0x", b"0X"):
            return bytes.fromhex(text[2:].decode())
    except ValueError:
        raise FormatError(f"bad xattr value in {line!r}") from None
    if len(text) >= 2 and text.startswith(b'"') and text.endswith(b'"'):
        return unquote(text[1:-1])
    raise FormatError(f"bad xattr value in {line!r}")


def parse_xattrs(data: bytes) -> list[FileXattrs]:
    """The blocks of ``xattr.txt`` (or of any ``getfattr --dump`` output). Raise
    FormatError for a bad name or value."""
    files = []
    for quoted, lines in _blocks(data, "xattr.txt"):
        name = unquote(quoted)
        check_name(name)
        attributes = []
        for line in lines:
            if line.startswith(b"#"):
                continue
            key, equals, text = line.partition(b"=")
            attribute = unquote(key)
            if not attribute:
                raise FormatError(f"bad xattr line {line!r}")
            attributes.append((attribute, _value(text, line) if equals else b""))
        files.append(FileXattrs(name, tuple(sorted(attributes))))
    return files


# ---------------------------------------------------------------------------
# cya's own files: hard-link groups, sparse files, nanosecond mtimes


@dataclass(frozen=True)
class LinkGroup:
    names: tuple[bytes, ...]  # two or more names of one inode


@dataclass(frozen=True)
class SparseFile:
    name: bytes
    size: int
    data: tuple[tuple[int, int], ...]  # (offset, length) of each data extent, in order


class FileTime(NamedTuple):  # a tuple: a backup makes one per file, so it must be cheap
    name: bytes
    mtime_ns: int


def format_links(groups: Iterable[LinkGroup]) -> bytes:
    out = [_HARDLINK_HEADER.encode()]
    for number, group in enumerate(groups, 1):
        out += [b"%d " % number + quote(name) for name in group.names]
    return b"\n".join(out) + b"\n"


def format_sparse(files: Iterable[SparseFile]) -> bytes:
    out = [_SPARSE_HEADER.encode()]
    for sparse in files:
        data = b",".join(b"%d+%d" % extent for extent in sparse.data) or b"-"
        out.append(b"%d " % sparse.size + data + b" " + quote(sparse.name))
    return b"\n".join(out) + b"\n"


TimeGroups = Iterable[tuple[bytes, Sequence[tuple[int, bytes]]]]


def format_times(times: Iterable[FileTime]) -> bytes:
    """``mtimes.txt`` (format 2) for ``times``, written afresh."""
    groups: list[tuple[bytes, list[tuple[int, bytes]]]] = []
    for time in times:
        if time.name == b".":
            directory, name = b"", b"."
        else:
            directory, _, name = time.name.rpartition(b"/")
        groups.append((directory, [(time.mtime_ns, name)]))
    return format_time_blocks(time_blocks(groups))


_TIME_LINE = b"%d %s".__mod__


def time_blocks(groups: TimeGroups) -> dict[bytes, bytes]:
    """{directory: its lines} of ``mtimes.txt`` from (directory relative to ``/``,
    [(mtime_ns, name)]) pairs in walk order: the directory ``b""`` is ``/``, a name is
    one component (``b"."`` in ``b""`` is the root itself). A directory given twice
    gets its names in one block; one without names is left out."""
    merged: dict[bytes, list[tuple[int, bytes]]] = {}
    for directory, entries in groups:
        if entries:
            merged.setdefault(directory, []).extend(entries)
    return {directory: time_block(entries) for directory, entries in merged.items()}


def time_block(entries: Sequence[tuple[int, bytes]]) -> bytes:
    """The lines of one directory's block of ``mtimes.txt`` for its (mtime_ns, name) pairs.

    This runs on every name of every source before each backup, so the lines are made
    at C speed and checked at once for a name that needs quoting."""
    lines = b"\n".join(map(_TIME_LINE, entries))
    if b"\\" in lines or b"\r" in lines or lines.count(b"\n") != len(entries) - 1:
        lines = b"\n".join(b"%d %s" % (mtime_ns, quote(name)) for mtime_ns, name in entries)
    return lines


def format_time_blocks(blocks: dict[bytes, bytes]) -> bytes:
    """``mtimes.txt`` written afresh from ``time_blocks``."""
    out = [_MTIME_HEADER.encode()]
    for directory, lines in blocks.items():
        out += (b"/" + quote(directory), lines)
    return b"\n".join(out) + b"\n"


def time_changes(previous: dict[bytes, bytes], current: dict[bytes, bytes]) -> bytes:
    """What to append to an ``mtimes.txt`` that holds ``previous`` (``time_blocks``) so
    that it holds ``current``: a ``# changes`` line, then per directory that changed its
    new and changed lines and a ``- <name>`` line per name gone; ``b""`` when nothing
    changed."""
    out = []
    for directory, lines in current.items():
        before = previous.get(directory)
        if before == lines:
            continue
        new = lines.split(b"\n")
        changed = new
        gone: set[bytes] = set()
        if before is not None:
            old = set(before.split(b"\n"))
            changed = [line for line in new if line not in old]
            gone = old.difference(new)
        names = {line.partition(b" ")[2] for line in changed}
        dropped = sorted({line.partition(b" ")[2] for line in gone} - names)
        out.append(b"/" + quote(directory))
        out += changed
        out += [b"- " + name for name in dropped]
    for directory, before in previous.items():
        if directory not in current:
            out.append(b"/" + quote(directory))
            out += sorted(b"- " + line.partition(b" ")[2] for line in before.split(b"\n"))
    if not out:
        return b""
    return b"\n".join([_CHANGES, *out]) + b"\n"


def _records(data: bytes, header: str, fields: int) -> Iterable[tuple[int, list[bytes]]]:
    """The lines of one of cya's own files split into ``fields`` leading fields and the
    name. Raise FormatError for a file of another format or version, or a short line."""
    lines = data.split(b"\n")
    if data and lines[0].decode("utf-8", "replace").split(":")[0] != header.split(":")[0]:
        raise FormatError(f"not a {header.split(',')[0][2:]} file: {lines[0][:80]!r}")
    for number, line in enumerate(lines, 1):
        if not line or line.startswith(b"#"):
            continue
        parts = line.split(b" ", fields)
        if len(parts) != fields + 1 or not parts[-1]:
            raise FormatError(f"line {number} has not {fields} fields and a name: {line!r}")
        yield number, parts


def _integer(text: bytes, number: int) -> int:
    if not re.fullmatch(rb"-?[0-9]+", text):
        raise FormatError(f"line {number}: {text!r} is not a number")
    return int(text)


def _name(text: bytes) -> bytes:
    name = unquote(text)
    check_name(name)
    return name


def parse_links(data: bytes) -> list[LinkGroup]:
    """The groups of ``hardlinks.txt``, in the order written. Raise FormatError."""
    groups: dict[int, list[bytes]] = {}
    for number, (group, quoted) in _records(data, _HARDLINK_HEADER, 1):
        groups.setdefault(_integer(group, number), []).append(_name(quoted))
    return [LinkGroup(tuple(names)) for names in groups.values()]


def parse_sparse(data: bytes) -> list[SparseFile]:
    """The files of ``sparse.txt``. Raise FormatError for a bad line or extent."""
    files = []
    for number, (size, extents, quoted) in _records(data, _SPARSE_HEADER, 2):
        data_extents = []
        if extents != b"-":
            for extent in extents.split(b","):
                offset, plus, length = extent.partition(b"+")
                if not plus:
                    raise FormatError(f"line {number}: bad extent {extent!r}")
                data_extents.append((_integer(offset, number), _integer(length, number)))
        files.append(SparseFile(_name(quoted), _integer(size, number), tuple(data_extents)))
    return files


def parse_times(data: bytes) -> list[FileTime]:
    """The entries of ``mtimes.txt`` (format 1 or 2) after every change it holds. Raise
    FormatError for a bad line or a file of another format."""
    if data.startswith(_MTIME_HEADER_1.split(":")[0].encode() + b":"):
        return [FileTime(_name(quoted), _integer(mtime, number))
                for number, (mtime, quoted) in _records(data, _MTIME_HEADER_1, 1)]
    lines = data.split(b"\n")
    if data and not lines[0].startswith(_MTIME_HEADER.split(":")[0].encode() + b":"):
        raise FormatError(f"not a cya mtimes file of format 1 or {MTIME_FORMAT}: "
                          f"{lines[0][:80]!r}")
    times: dict[bytes, int] = {}
    directory: bytes | None = None
    for number, line in enumerate(lines, 1):
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b"/"):
            directory = unquote(line[1:])
            if directory:
                check_name(directory)
            continue
        mtime, space, quoted = line.partition(b" ")
        if not space or not quoted:
            raise FormatError(f"line {number} has not a mtime and a name: {line!r}")
        if directory is None:
            raise FormatError(f"line {number} comes before the first /<directory> line")
        name = unquote(quoted)
        if b"/" in name or (name == b"." and directory):
            raise FormatError(f"line {number}: {name!r} is not one name in its directory")
        full = (directory + b"/" + name) if directory else name
        check_name(full)
        if mtime == b"-":
            times.pop(full, None)
        else:
            times[full] = _integer(mtime, number)
    return [FileTime(name, mtime_ns) for name, mtime_ns in times.items()]


def holes(size: int, data: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (offset, length) ranges of a file of ``size`` bytes that no data extent covers."""
    result = []
    at = 0
    for offset, length in sorted(data):
        if offset > at:
            result.append((at, min(offset, size) - at))
        at = max(at, offset + length)
        if at >= size:
            break
    if at < size:
        result.append((at, size - at))
    return [(offset, length) for offset, length in result if length > 0]


# ---------------------------------------------------------------------------
# Everything at once, and the plan of what a restore of a prefix re-applies


@dataclass(frozen=True)
class Metadata:
    acls: tuple[FileAcl, ...] = ()
    xattrs: tuple[FileXattrs, ...] = ()
    links: tuple[LinkGroup, ...] = ()
    sparse: tuple[SparseFile, ...] = ()
    times: tuple[FileTime, ...] = ()


def parse(files: dict[str, bytes]) -> Metadata:
    """The metadata of a directory's files, given as {file name: content}; a missing
    file holds nothing. Raise FormatError naming the file that does not parse."""
    parsers: dict[str, Callable[[bytes], list]] = {
        ACL_FILE: parse_acls, XATTR_FILE: parse_xattrs, HARDLINK_FILE: parse_links,
        SPARSE_FILE: parse_sparse, MTIME_FILE: parse_times}
    times, changes = files.get(MTIME_FILE, b""), files.get(MTIME_CHANGES_FILE, b"")
    if times and changes:  # changes without the file they change are meaningless
        files = {**files, MTIME_FILE: times + (b"" if times.endswith(b"\n") else b"\n")
                 + changes}
    parsed = {}
    for name, parser in parsers.items():
        try:
            parsed[name] = tuple(parser(files.get(name, b"")))
        except FormatError as error:
            raise FormatError(f"{name}: {error}") from None
    return Metadata(parsed[ACL_FILE], parsed[XATTR_FILE], parsed[HARDLINK_FILE],
                    parsed[SPARSE_FILE], parsed[MTIME_FILE])


@dataclass(frozen=True)
class ApplyPlan:
    """What a restore of ``prefix`` re-applies, every name relative to the restored copy
    (``b""`` is the copy itself), in the order it must happen: links, holes, xattrs,
    ACLs, then times with each directory after its contents."""

    prefix: bytes
    links: tuple[LinkGroup, ...] = ()
    sparse: tuple[SparseFile, ...] = ()
    xattrs: tuple[FileXattrs, ...] = ()
    acls: tuple[FileAcl, ...] = ()
    times: tuple[FileTime, ...] = ()
    outside_links: int = 0  # names of link groups whose partners lie outside the prefix


def plan_apply(metadata: Metadata, prefix: bytes) -> ApplyPlan:
    """The part of ``metadata`` at or below ``prefix`` (relative to ``/``; ``b""`` for
    everything), renamed relative to where the prefix was restored. A link group keeps
    the members inside; one left with a single member is dropped (a plain file)."""
    prefix = prefix.strip(b"/")

    def inside(name: bytes) -> bytes | None:
        return relative_to(name, prefix)

    links = []
    outside = 0
    for group in metadata.links:
        names = tuple(rel for rel in map(inside, group.names) if rel is not None)
        if len(names) >= 2:
            links.append(LinkGroup(names))
        elif names:
            outside += 1
    sparse = tuple(SparseFile(rel, s.size, s.data) for s in metadata.sparse
                   if (rel := inside(s.name)) is not None)
    xattrs = tuple(FileXattrs(rel, x.attributes) for x in metadata.xattrs
                   if (rel := inside(x.name)) is not None)
    acls = tuple(FileAcl(rel, a.owner, a.group, a.flags, a.lines) for a in metadata.acls
                 if (rel := inside(a.name)) is not None)
    times = [FileTime(rel, t.mtime_ns) for t in metadata.times
             if (rel := inside(t.name)) is not None]
    # deepest first: setting a child's time never touches its parent's, but the order
    # keeps "directories after their contents" true for anything that does
    times.sort(key=lambda t: (-(t.name.count(b"/") + (1 if t.name else 0)), t.name))
    return ApplyPlan(prefix, tuple(links), sparse, xattrs, acls, tuple(times), outside)


# ---------------------------------------------------------------------------
# What the backup leaves out: duplicity's --exclude globs


def duplicity_glob_regex(pattern: str) -> str:
    """The regular expression duplicity makes of a shell glob (its ``glob_to_regex``):
    ``**`` any characters, ``/`` included; ``*`` any but ``/``; ``?`` one but ``/``;
    ``[...]`` a class (``[!...]``/``[^...]`` negated; a ``[`` without ``]`` is literal)."""
    i, n, out = 0, len(pattern), []
    while i < n:
        char = pattern[i]
        i += 1
        if pattern[i - 1:i + 1] == "**":
            out.append(".*")
            i += 1
        elif char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            j = i
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
            else:
                inside = pattern[i:j].replace("\\", "\\\\")
                i = j + 1
                if inside[0] in "!^":
                    inside = "^" + inside[1:]
                out.append(f"[{inside}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


_GLOB_CHARACTERS = re.compile(r"[*?\[]")


class _Glob(NamedTuple):
    whole: re.Pattern[str]  # the path, or a directory above it, matches
    exact: re.Pattern[str] | None  # a pattern ending in "/": the path itself matches


class GlobExclusion:
    """The ``exclude`` globs of the config as duplicity applies them when cya passes each
    as ``--exclude`` (before its includes of the sources): a test on absolute paths,
    ``exclusion(path, is_dir)``.

    duplicity's rules, followed here exactly: a pattern is matched against the
    absolute path, decoded as Python decodes file names; ``**`` crosses ``/``, ``*``
    and ``?`` do not; a pattern matching a directory excludes everything below it; a
    pattern ending in ``/`` matches a directory itself, not a file (everything below
    a matching directory still); ``ignorecase:`` in front matches regardless of case;
    ``/`` alone is ``/**``. cya's own ``find``/``ls --date`` globs (core.fileindex)
    differ: there a pattern without ``/`` matches the last component and a path
    relative to ``/``; what a backup holds is decided by duplicity's rules, so these
    are the ones here.

    A pattern duplicity refuses (one not below ``/``, ``//`` inside) fails the backup
    in duplicity; here it leaves out only what its regex matches. What else makes
    duplicity leave a path out is not followed (``duplicity_options`` such as
    ``--exclude-if-present`` or ``--exclude-other-filesystems``; sockets): the
    metadata of such paths is recorded and, as they are not restored, never applied.

    ``decode``/``encode`` turn file names into text and back as duplicity does
    (``os.fsdecode``/``os.fsencode``; UTF-8 with surrogate escapes by default).
    """

    def __init__(self, patterns: Sequence[str],
                 decode: Callable[[bytes], str] = lambda path: path.decode(
                     "utf-8", "surrogateescape"),
                 encode: Callable[[str], bytes] = lambda text: text.encode(
                     "utf-8", "surrogateescape")):
        self.patterns = tuple(patterns)
        self._decode = decode
        names = set()
        globs: list[_Glob] = []
        others: list[_Glob] = []
        for pattern in self.patterns:
            text, flags = pattern, re.S
            if text.lower().startswith("ignorecase:"):
                text, flags = text[len("ignorecase:"):].casefold(), flags | re.I
            if not text:
                continue
            slash = text != "/" and text.endswith("/")
            text = "/**" if text == "/" else text[:-1] if slash else text
            regex = duplicity_glob_regex(text)
            glob = _Glob(re.compile(f"^{regex}($|/)", flags),
                         re.compile(f"^{regex}($)", flags) if slash else None)
            globs.append(glob)
            name = text[3:]
            if (flags == re.S and not slash and text.startswith("**/") and name
                    and "/" not in name and not _GLOB_CHARACTERS.search(name)):
                names.add(encode(name))
            else:
                others.append(glob)
        self._globs = tuple(globs)
        self._names = frozenset(names)
        self._others = tuple(others)

    def __bool__(self) -> bool:
        return bool(self._globs)

    def __call__(self, path: bytes, is_dir: bool) -> bool:
        """Whether duplicity leaves out the absolute ``path`` (a directory when ``is_dir``),
        by itself or because a directory above it is left out."""
        return self._matches(self._globs, self._decode(path), is_dir)

    def below(self, prefix: bytes, name: bytes, is_dir: bool) -> bool:
        """``self(prefix + name, is_dir)`` where ``prefix`` is a directory that is not left
        out, with a ``/`` at its end; faster: ``**/name`` patterns are a set lookup of
        the last name.

        Below a directory that is not left out, such a pattern can only match the last
        name (``$`` in duplicity's regex also matches before a final newline, hence the
        second lookup)."""
        names = self._names
        if names and (name in names or (name[-1:] == b"\n" and name[:-1] in names)):
            return True
        if not self._others:
            return False
        return self._matches(self._others, self._decode(prefix + name), is_dir)

    @staticmethod
    def _matches(globs: Sequence[_Glob], text: str, is_dir: bool) -> bool:
        for glob in globs:
            if glob.whole.match(text) and (glob.exact is None or is_dir
                                           or not glob.exact.match(text)):
                return True
        return False
