"""The per-backup file index: what each backup holds, without decrypting it.

duplicity logs, for every backup, each path it added (A), changed (M) or
deleted (D) relative to the backup it diffed against. cya keeps that delta,
with each path's type, size and mtime, per backup; the file list of a backup is
its chain's deltas applied in order from the full. Paths are relative to ``/``
as duplicity writes them (``home/me/a.txt``; ``.`` is the root).

Because a glob match depends on the path alone, filtering every delta first and
then applying them gives the same answer as applying then filtering: ``find``
never builds a full file list.

Names are bytes: a path is kept as a str whose bytes that are not UTF-8 are lone
surrogates (Python's ``os.fsdecode``), so every name round-trips; ``shown`` prints
them escaped (``caf\\xe9.txt``, ``new\\nline``), JSON carries the surrogates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Entry:
    path: str
    type: str  # "file" | "dir" | "symlink" | "other" | "gone" (vanished before it was listed)
    size: int | None
    mtime: int | None

    def as_json(self) -> dict:
        """As ``ls --date --json`` and ``find --json`` print it: the path absolute."""
        return {"path": shown(self.path), "type": self.type, "size": self.size,
                "mtime": self.mtime}


@dataclass(frozen=True)
class Change:
    change: str  # "A" | "M" | "D"
    entry: Entry


def encode(delta: Sequence[Change]) -> bytes:
    # ASCII JSON: a name that is not UTF-8 travels as escaped surrogates
    return "\n".join(json.dumps([c.change, c.entry.path, c.entry.type, c.entry.size,
                                 c.entry.mtime])
                     for c in delta).encode()


def decode(data: bytes) -> list[Change]:
    changes = []
    for line in data.decode().splitlines():
        change, path, kind, size, mtime = json.loads(line)
        changes.append(Change(change, Entry(path, kind, size, mtime)))
    return changes


def apply(chain: Iterable[Sequence[Change]], keep=lambda path: True) -> dict[str, Entry]:
    """The file list after applying each delta in order (only paths ``keep`` accepts)."""
    files: dict[str, Entry] = {}
    for delta in chain:
        for change in delta:
            if not keep(change.entry.path):
                continue
            if change.change == "D":
                files.pop(change.entry.path, None)
            else:
                files[change.entry.path] = change.entry
    return files


@lru_cache(maxsize=64)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)  # a name may hold a line break


def matcher(pattern: str):
    """A test for paths that match a glob.

    ``*`` and ``?`` stay within one path component, ``**`` crosses them. A pattern
    without ``/`` is matched against the last component (like ``find -name``);
    one with ``/`` against the whole path, with or without a leading ``/``.
    """
    if "/" not in pattern:
        regex = _glob_regex(pattern)
        return lambda path: bool(regex.fullmatch(path.rsplit("/", 1)[-1]))
    regex = _glob_regex(pattern.lstrip("/"))
    return lambda path: bool(regex.fullmatch(path))


def shown(path: str) -> str:
    """A path as users write it: absolute, with what a terminal cannot show escaped —
    bytes that are not UTF-8 as ``\\xNN``, control characters as ``\\n``, ``\\t`` or
    ``\\xNN``, and a backslash as two."""
    text = "/" if path == "." else "/" + path
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


def under(prefix: str):
    """A test for paths at or below ``prefix`` (absolute or relative to ``/``)."""
    prefix = prefix.strip("/")
    if not prefix or prefix == ".":
        return lambda path: True
    return lambda path: path == prefix or path.startswith(prefix + "/")
