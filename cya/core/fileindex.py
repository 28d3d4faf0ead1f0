"""The per-backup file index: what each backup holds, without decrypting it.

duplicity's signature file of every backup names each path it stored and each it
deleted, relative to the backup it diffed against (cya/core/sigtar.py). cya keeps that
delta per backup, with what ``ls`` shows of each path: type (a symlink's target), mode,
owner and group, size, mtime, and marks for what duplicity does not keep (ACLs,
xattrs, hard links, holes: cya's metadata records them). The file list of a
backup is its chain's deltas applied in order from the full. Paths are bytes,
relative to ``/`` as duplicity writes them (``home/me/a.txt``; ``.`` is the root).

Because a glob match depends on the path alone, filtering every delta first and
then applying them gives the same answer as applying then filtering: ``find``
never builds a full file list.

Format 2 (``MAGIC``, then one record per path, every field ``\\0``-terminated)::

    META \\0 PATH \\0 TARGET \\0
    META = CHANGE TYPE [" " MODE " " OWNER " " GROUP " " SIZE " " MTIME " " MARKS]

CHANGE is A (a path of a full), M (one an incremental added or changed; indexes
written before cya read signature files say A for an added one) or D (deleted);
TYPE one of ``TYPE_CODES`` (``g``: gone before cya looked); MODE is ``st_mode`` in
octal; OWNER and GROUP are names (or ids when a name has none or holds a space); SIZE
(files only), MTIME (seconds) or MARKS may be ``-``; MARKS are letters of
``MARK_NAMES``; TARGET is a symlink's target, else empty.
A name holds any byte but ``\\0``, so one ``split`` parses a whole delta, and a
record is decoded only when it is shown. Format 1 (a JSON list per line, names as
strings with surrogates) is still read: old catalogs and the bucket hold it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import compress, repeat
from typing import NamedTuple

MAGIC = b"cya-index 2\n"
TYPE_CODES = {"file": b"f", "dir": b"d", "symlink": b"l", "other": b"o", "gone": b"g"}
TYPE_NAMES = {code[0]: name for name, code in TYPE_CODES.items()}
MARK_NAMES = {"a": "acl", "x": "xattr", "h": "hardlink", "s": "sparse"}
_D = ord("D")

Keep = Callable[[bytes], bool]


def fsencode(name: str | bytes) -> bytes:
    """A name as the bytes the file system holds (a str keeps undecodable bytes as
    surrogates, as ``os.fsdecode`` made them)."""
    return name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")


class Entry(NamedTuple):  # a tuple: ``ls`` of a whole backup makes one per file
    path: bytes
    type: str  # "file" | "dir" | "symlink" | "other" | "gone" (vanished before it was listed)
    size: int | None
    mtime: int | None
    mode: int | None = None  # st_mode (type and permission bits); None in format 1
    owner: str | None = None
    group: str | None = None
    target: bytes | None = None  # a symlink's target
    marks: str = ""  # letters of MARK_NAMES

    def as_json(self) -> dict:
        """As ``ls --date --json`` and ``find --json`` print it: the path absolute."""
        return {"path": shown(self.path), "type": self.type, "size": self.size,
                "mtime": (datetime.fromtimestamp(self.mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                          if self.mtime is not None else None),
                "mode": filemode(self.mode) if self.mode else None,
                "owner": self.owner, "group": self.group,
                "target": escaped(self.target) if self.target is not None else None,
                "marks": [MARK_NAMES[mark] for mark in self.marks]}


def record(change: str, path: bytes, kind: str, mode: int | None = None,
           owner: str | None = None, group: str | None = None, size: int | None = None,
           mtime: int | None = None, marks: str = "", target: bytes | None = None) -> bytes:
    """One format-2 record."""
    meta = record_meta(change, kind, mode, owner, group, size, mtime, marks)
    return meta + b"\0" + path + b"\0" + (target or b"") + b"\0"


def record_meta(change: str, kind: str, mode: int | None = None, owner: str | None = None,
                group: str | None = None, size: int | None = None, mtime: int | None = None,
                marks: str = "") -> bytes:
    """The META field of a record."""
    if change == "D" or kind == "gone":
        return change.encode() + TYPE_CODES[kind]
    return _meta_head(change, kind, mode, owner, group) + (
        f"{'-' if size is None else size} {'-' if mtime is None else mtime} "
        f"{marks or '-'}").encode()


@lru_cache(maxsize=4096)
def _meta_head(change: str, kind: str, mode: int | None, owner: str | None,
               group: str | None) -> bytes:
    """CHANGE TYPE and what follows up to SIZE of a path that exists: made once for each
    of the few kinds, modes and owners a backup holds (a full writes one record per path)."""
    return change.encode() + TYPE_CODES[kind] + (
        f" {'-' if mode is None else format(mode, 'o')} {owner or '-'} {group or '-'} ").encode()


@dataclass(frozen=True, slots=True)
class Delta:
    """One backup's changes, parsed only as far as a split: parallel lists."""

    metas: list[bytes]
    paths: list[bytes]
    targets: list[bytes]

    def __len__(self) -> int:
        return len(self.paths)

    def only(self, keep: Keep | None) -> Delta:
        """The changes of paths ``keep`` accepts (None: all)."""
        if keep is None or keep is everything:
            return self
        flags = (keep.flags(self.paths) if isinstance(keep, Selector)
                 else list(map(keep, self.paths)))
        if all(flags):
            return self
        return Delta(list(compress(self.metas, flags)), list(compress(self.paths, flags)),
                     list(compress(self.targets, flags)))

    def entries(self) -> list[Entry]:
        return [entry(p, m, t) for m, p, t in zip(self.metas, self.paths, self.targets,
                                                   strict=True)]


def decode(data: bytes) -> Delta:
    """Parse a delta of either format."""
    if data.startswith(MAGIC):
        fields = data[len(MAGIC):].split(b"\0")
        return Delta(fields[0:-1:3], fields[1:-1:3], fields[2:-1:3])
    return _decode_json(data)


SEARCH_BYTES = 1000  # a search pays when a candidate comes at most once in this many bytes
SAMPLE_BYTES = 1 << 16  # where the rarest piece is chosen: the start of a delta


def select(data: bytes, keep: Keep | None) -> Delta:
    """``decode(data).only(keep)``, without parsing records ``keep`` cannot accept.

    Every path a ``Selector`` accepts holds certain text (a glob's literal part, the
    directory of ``under``). When the rarest such text is rare in the delta, the delta
    is searched for it (in C) and only the records it falls in are parsed and tested:
    ``find`` of a name or ``ls`` of one directory touch a few hundred of 100,000
    records instead of splitting them all. A record is three fields; which field a
    match falls in is told by counting the separators before it, once over the delta."""
    pieces = (keep.required() if isinstance(keep, Selector) and data.startswith(MAGIC)
              else ())
    base = len(MAGIC)
    if not pieces:
        return decode(data).only(keep)
    # the rarest piece in a sample (the longest of equals), then whether it is rare enough
    piece = min(pieces, key=lambda p: (data.count(p, base, base + SAMPLE_BYTES), -len(p)))
    if data.count(piece, base) > len(data) // SEARCH_BYTES + 16:
        return decode(data).only(keep)
    find, rfind, count = data.find, data.rfind, data.count
    metas: list[bytes] = []
    paths: list[bytes] = []
    targets: list[bytes] = []
    fields, counted = 0, base  # separators in data[base:counted]
    at = find(piece, base)
    while at != -1:
        start = rfind(b"\0", base, at) + 1 or base
        end = find(b"\0", at)
        if end == -1:
            break
        fields += count(b"\0", counted, start)
        counted = start
        if fields % 3 == 1:  # a path, not a type and mode or a symlink's target
            path = data[start:end]
            if keep(path):
                metas.append(data[rfind(b"\0", base, start - 1) + 1 or base:start - 1])
                paths.append(path)
                targets.append(data[end + 1:find(b"\0", end + 1)])
        at = find(piece, end)  # one test a field is enough
    return Delta(metas, paths, targets)


def _decode_json(data: bytes) -> Delta:
    """Format 1: ``[change, path, type, size, mtime]`` per line, as records of format 2."""
    metas, paths, targets = [], [], []
    for line in data.decode().splitlines():
        change, path, kind, size, mtime = json.loads(line)
        code = change.encode() + TYPE_CODES.get(kind, b"o")
        if change != "D" and kind != "gone":
            code += (f" - - - {'-' if size is None else size} "
                     f"{'-' if mtime is None else mtime} -").encode()
        metas.append(code)
        paths.append(fsencode(path))
        targets.append(b"")
    return Delta(metas, paths, targets)


def upgrade(data: bytes) -> bytes:
    """A delta in format 2 (format 1 converted; what it lacks stays unknown)."""
    if data.startswith(MAGIC):
        return data
    delta = _decode_json(data)
    return MAGIC + b"".join(m + b"\0" + p + b"\0" + t + b"\0"
                            for m, p, t in zip(delta.metas, delta.paths, delta.targets,
                                               strict=True))


def entry(path: bytes, meta: bytes, target: bytes) -> Entry:
    """The Entry of one record."""
    kind = TYPE_NAMES.get(meta[1], "other")
    if len(meta) <= 2:
        return Entry(path, kind, None, None)
    _, mode, owner, group, size, mtime, marks = meta.split(b" ")
    return Entry(path, kind, None if size == b"-" else int(size),
                 None if mtime == b"-" else int(mtime),
                 None if mode == b"-" else int(mode, 8),
                 None if owner == b"-" else owner.decode(),
                 None if group == b"-" else group.decode(),
                 target if kind == "symlink" else None,
                 "" if marks == b"-" else marks.decode())


Files = dict[bytes, tuple[bytes, bytes]]  # path -> (meta, target)


def apply(chain: Iterable[Delta], files: Files | None = None) -> Files:
    """The file list after applying each delta in order: path -> (meta, target). With
    ``files``, the deltas are applied to that list (which changes)."""
    files = {} if files is None else files
    for delta in chain:
        metas = delta.metas
        if not files and not any(map(bytes.startswith, metas, repeat(b"D"))):
            files = dict(zip(delta.paths, zip(metas, delta.targets, strict=True),
                             strict=True))
            continue
        for meta, path, target in zip(metas, delta.paths, delta.targets, strict=True):
            if meta[0] == _D:
                files.pop(path, None)
            else:
                files[path] = (meta, target)
    return files


def listing(files: Files) -> Delta:
    """A file list as parallel lists sorted by path (every change an addition)."""
    paths = sorted(files)
    pairs = list(map(files.__getitem__, paths))
    return Delta(list(map(tuple.__getitem__, pairs, repeat(0))), paths,
                 list(map(tuple.__getitem__, pairs, repeat(1))))


def entries(files: Files) -> list[Entry]:
    """The entries of a file list, sorted by path."""
    return listing(files).entries()


def everything(path: bytes) -> bool:
    return True


# -- selecting paths -------------------------------------------------------------------

def _glob_tokens(pattern: bytes) -> Iterator[tuple[str, bytes]]:
    """A glob as (kind, text): "**", "*", "?", "class" (``[...]``) or "literal" (one byte;
    an unclosed ``[`` too)."""
    i = 0
    while i < len(pattern):
        char = pattern[i:i + 1]
        if pattern.startswith(b"**", i):
            yield "**", b"**"
            i += 2
            continue
        if char in (b"*", b"?"):
            yield char.decode(), char
        elif char == b"[" and (end := pattern.find(b"]", i + 2)) != -1:
            yield "class", pattern[i:end + 1]
            i = end
        else:
            yield "literal", char
        i += 1


@lru_cache(maxsize=64)
def _glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    out = []
    for kind, text in _glob_tokens(pattern):
        if kind == "**":
            out.append(b".*")
        elif kind == "*":
            out.append(b"[^/]*")
        elif kind == "?":
            out.append(b"[^/]")
        elif kind == "class":
            body = text[1:-1]
            if body.startswith(b"!"):
                body = b"^" + body[1:]
            out.append(b"[" + body.replace(b"\\", b"\\\\") + b"]")
        else:
            out.append(re.escape(text))
    return re.compile(b"".join(out), re.DOTALL)  # a name may hold a line break


class Selector:
    """A test for paths that can also test a whole list at C speed (``flags``) and names
    text every path it accepts holds (``required``: what ``select`` searches for)."""

    def __call__(self, path: bytes) -> bool:
        raise NotImplementedError

    def flags(self, paths: list[bytes]) -> list[object]:
        """One true or false value per path, in order."""
        return list(map(self, paths))

    def required(self) -> tuple[bytes, ...]:
        """Pieces of text each accepted path holds (all of them); () when none is known."""
        return ()


class _Glob(Selector):
    def __init__(self, pattern: bytes):
        self.name = b"/" not in pattern
        self.pattern = pattern if self.name else pattern.lstrip(b"/")
        self.match = _glob_regex(self.pattern).fullmatch

    def __call__(self, path: bytes) -> bool:
        if self.name:
            return self.match(path, path.rfind(b"/") + 1) is not None
        return self.match(path) is not None

    def flags(self, paths: list[bytes]) -> list[object]:
        if self.name:  # the last name: from just after the last "/"
            starts = map(int.__add__, map(bytes.rfind, paths, repeat(b"/")), repeat(1))
            return list(map(self.match, paths, starts))
        return list(map(self.match, paths))

    def required(self) -> tuple[bytes, ...]:
        pieces, run = [], b""
        for kind, text in _glob_tokens(self.pattern):
            if kind == "literal":
                run += text
            elif run:
                pieces.append(run)
                run = b""
        return tuple(pieces + [run] if run else pieces)


class _Under(Selector):
    def __init__(self, prefix: bytes):
        self.prefix, self.below = prefix, prefix + b"/"

    def __call__(self, path: bytes) -> bool:
        return path == self.prefix or path.startswith(self.below)

    def flags(self, paths: list[bytes]) -> list[object]:
        flags = list(map(bytes.startswith, paths, repeat(self.below)))
        at = -1
        try:  # the directory itself (once in a delta, so a search beats a test a path)
            while True:
                at = paths.index(self.prefix, at + 1)
                flags[at] = True
        except ValueError:
            return flags

    def required(self) -> tuple[bytes, ...]:
        return (self.prefix,)


def matcher(pattern: str) -> Keep:
    """A test for paths that match a glob.

    ``*`` and ``?`` stay within one path component, ``**`` crosses them. A pattern
    without ``/`` is matched against the last component (like ``find -name``);
    one with ``/`` against the whole path, with or without a leading ``/``.
    """
    return _Glob(fsencode(pattern))


def under(prefix: str | bytes) -> Keep:
    """A test for paths at or below ``prefix`` (absolute or relative to ``/``)."""
    prefix = fsencode(prefix).strip(b"/")
    if not prefix or prefix == b".":
        return everything
    return _Under(prefix)


# -- showing names ---------------------------------------------------------------------

def shown(path: str | bytes) -> str:
    """A path as users write it: absolute, with what a terminal cannot show escaped —
    bytes that are not UTF-8 as ``\\xNN``, control characters as ``\\n``, ``\\t`` or
    ``\\xNN``, and a backslash as two."""
    name = fsencode(path)
    name = b"/" if name == b"." else b"/" + name
    if name.isascii():
        text = name.decode()
        if text.isprintable() and "\\" not in text:
            return text
    return escaped(name)


def escaped(name: str | bytes) -> str:
    """A name with what a terminal cannot show escaped (see ``shown``)."""
    text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escaped(char) for char in text)


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escaped(char: str) -> str:
    """One character as ``shown`` prints it: ``\\xNN`` only for a byte that is not UTF-8,
    ``\\uNNNN``/``\\UNNNNNNNN`` for any other character a terminal cannot show (so no
    two names show the same)."""
    if char in _NAMED:
        return _NAMED[char]
    if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8
        return f"\\x{ord(char) - 0xDC00:02x}"
    if not char.isprintable():
        if ord(char) < 0x80:  # an ASCII control: no undecodable byte is below 0x80
            return f"\\x{ord(char):02x}"
        return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
    return char


_PERMISSIONS = ((0o400, "r"), (0o200, "w"), (0o100, "x"), (0o040, "r"), (0o020, "w"),
                (0o010, "x"), (0o004, "r"), (0o002, "w"), (0o001, "x"))
_TYPE_LETTERS = {0o140000: "s", 0o120000: "l", 0o100000: "-", 0o060000: "b", 0o040000: "d",
                 0o020000: "c", 0o010000: "p"}


@lru_cache(maxsize=256)
def filemode(mode: int) -> str:
    """``ls -l``'s mode string (``-rw-r-----``, ``drwxrwsr-x``, ``lrwxrwxrwx``)."""
    letters = [_TYPE_LETTERS.get(mode & 0o170000, "?")]
    letters += [letter if mode & bit else "-" for bit, letter in _PERMISSIONS]
    for bit, at, on in ((0o4000, 3, "s"), (0o2000, 6, "s"), (0o1000, 9, "t")):
        if mode & bit:
            letters[at] = on if letters[at] == "x" else on.upper()
    return "".join(letters)


def kind_of(mode: int) -> str:
    """The index type of a file with ``st_mode`` ``mode``."""
    kind = mode & 0o170000
    return ("file" if kind == 0o100000 else "dir" if kind == 0o040000
            else "symlink" if kind == 0o120000 else "other")

