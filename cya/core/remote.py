"""Remote sources written ``[user@]host:/path``, and the names their files have in a backup.

A remote source is backed up through a local mount point (see ``cya/sshfs.py``), so a
backup holds its files under that mount point. ``remote_name`` and ``local_name`` turn
one spelling into the other with a mapping ``{mount point: "user@host:/path"}`` — the
mapping a backup recorded, so old backups keep their names even if the mount base moves.

The syntax follows scp and rsync: a colon before the first slash makes a source
remote. ``user@`` is optional (ssh then chooses the user, from ``~/.ssh/config`` or the
local user name); the path must be absolute. A port comes from ``ssh_options``
(``Port=2222``) or ``~/.ssh/config``, never from the source: ``host:2222/path`` would be
ambiguous. A local directory whose name holds a colon is written ``./name:with:colons``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

_LOOKS_REMOTE = re.compile(r"[^/~.][^/]*:")  # a colon before the first slash
_REMOTE = re.compile(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]\s]+\]|[^@:\s\[\]]+):(?P<path>.*)",
                     re.DOTALL)
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+(?:%[\w.-]+)?\]|[A-Za-z0-9_.-]+")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._@-]+")


@dataclass(frozen=True)
class RemoteSource:
    """A directory on another machine, reached over ssh."""

    user: str  # "" when not written: ssh decides
    host: str  # as written; an IPv6 address keeps its brackets
    path: str  # absolute, normalized, no trailing slash (except "/")

    @property
    def login(self) -> str:
        """``user@host``, or ``host`` when no user was written."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def spelling(self) -> str:
        """The source as the config writes it: ``user@host:/path``."""
        return f"{self.login}:{self.path}"

    def __str__(self) -> str:
        return self.spelling


def looks_remote(text: str) -> bool:
    """Whether a source string is meant as ``[user@]host:/path`` (a colon before any slash,
    and not beginning with ``/``, ``~`` or ``.``)."""
    return bool(_LOOKS_REMOTE.match(text))


def parse_remote(text: str) -> RemoteSource:
    """Return the remote source ``text`` names. Raise ValueError saying what is wrong."""
    match = _REMOTE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a remote source like \"me@host:/path\"")
    user, host, path = match["user"] or "", match["host"], match["path"]
    if user.startswith("-") or host.startswith("-"):
        raise ValueError(f"{text!r}: a user or host name cannot begin with '-'")
    if user and not re.fullmatch(r"[^\s:/@]+", user):
        raise ValueError(f"{text!r}: {user!r} is not a user name")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name or address")
    if not path.startswith("/"):
        raise ValueError(f"{text!r}: the remote path must be absolute (like {host}:/home/me)")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{text!r}: the remote path must not contain '..'")
    return RemoteSource(user, host, "/" + "/".join(parts))


def mount_name(source: RemoteSource) -> str:
    """The name of the source's mount point in the mount base: readable, and the same
    in every run (duplicity records paths, so a new name would look like a new source).

    ``me@db1:/var/lib/postgresql`` -> ``me@db1_var_lib_postgresql-3fa2c1d09e7b``.
    """
    readable = _NAME_CHARS.sub("_", f"{source.login}{source.path}").strip("_")[:60]
    digest = hashlib.sha256(source.spelling.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{readable}-{digest[:12]}"


def remote_name(path: str, mapping: Mapping[str, str]) -> str:
    """``path`` spelled as the user wrote its source: a path under a mount point of
    ``mapping`` becomes ``user@host:/path/...``; any other path is returned unchanged.

    ``path`` may be absolute or relative to ``/`` (as duplicity lists it).
    """
    absolute = "/" + path.lstrip("/")
    point = _longest_prefix(absolute, mapping)
    if point is None:
        return path
    rest = absolute[len(point.rstrip("/")):].rstrip("/")
    return mapping[point].rstrip("/") + rest if rest else mapping[point]


def local_name(remote: str, mapping: Mapping[str, str]) -> str | None:
    """The absolute path inside the backup of ``user@host:/path/...``, or None when no
    source of ``mapping`` holds it."""
    by_spelling = {spelling: point for point, spelling in mapping.items()}
    spelling = _longest_prefix(remote, by_spelling)
    if spelling is None:
        return None
    rest = remote[len(spelling.rstrip("/")):].rstrip("/")
    point = by_spelling[spelling]
    return point.rstrip("/") + rest if rest else point


def _longest_prefix(text: str, prefixes: Mapping[str, str]) -> str | None:
    """The longest of ``prefixes`` that is ``text`` or a parent of it (path-wise)."""
    best = None
    for prefix in prefixes:
        trimmed = prefix.rstrip("/")
        if text == prefix or text == trimmed or text.startswith(trimmed + "/"):
            if best is None or len(trimmed) > len(best.rstrip("/")):
                best = prefix
    return best
