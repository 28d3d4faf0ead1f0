"""Duplicity's file names, parsed without starting duplicity.

Every file duplicity writes to a target names its backup set:

    duplicity-full.20121204T120000Z.vol1.difftar.gpg
    duplicity-full.20121204T120000Z.manifest.gpg
    duplicity-full-signatures.20121204T120000Z.sigtar.gpg
    duplicity-inc.20121204T120000Z.to.20121205T120000Z.vol1.difftar.gpg
    duplicity-inc.20121204T120000Z.to.20121205T120000Z.manifest.gpg
    duplicity-new-signatures.20121204T120000Z.to.20121205T120000Z.sigtar.gpg

Without encryption the suffix is ``.gz`` (or nothing for a manifest); in
duplicity's local cache a file being written ends in ``.part``. A backup set
is identified by its end time (the time of the backup). A set is *complete* when
it has what duplicity needs to use it: its manifest (written last), its signatures,
and volumes numbered 1..n without a gap. Anything less (a lost manifest, a manifest
dropped in by hand) is not a backup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

_TIME = r"[0-9]{8}T[0-9]{6}Z"
_NAME = re.compile(
    rf"duplicity-(?P<type>full|inc|full-signatures|new-signatures)"
    rf"\.(?P<start>{_TIME})(?:\.to\.(?P<end>{_TIME}))?"
    rf"\.(?:vol(?P<volume>[0-9]+)\.difftar|(?P<manifest>manifest)|(?P<sigtar>sigtar))"
    rf"(?:\.(?P<suffix>gpg|gz|z))?(?P<partial>\.part)?"
)
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


def parse_time(text: str) -> datetime:
    """Return the UTC datetime of a duplicity time stamp such as ``20121204T120000Z``.

    Raise ValueError if it is not one. (Sliced by hand: strptime dominated the time
    of ``cya ls`` and ``status`` on a large tree.)
    """
    digits = text[:8] + text[9:15]
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" or not (
            digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a duplicity time stamp: {text!r}")
    return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]),
                    int(text[11:13]), int(text[13:15]), tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """Return the duplicity time stamp of an aware datetime."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


@dataclass(frozen=True)
class DuplicityFile:
    name: str
    full: bool  # part of a full backup set (else an incremental)
    role: str  # "volume" | "manifest" | "signatures"
    start: datetime
    end: datetime  # the backup time; equals start for a full
    volume: int | None
    encrypted: bool
    partial: bool


@lru_cache(maxsize=65536)
def parse_name(name: str) -> DuplicityFile | None:
    """Return what a duplicity file name says, or None for any other name."""
    match = _NAME.fullmatch(name)
    if not match:
        return None
    kind = match["type"]
    full = kind in ("full", "full-signatures")
    has_end = match["end"] is not None
    if full == has_end:  # a full has one time, an incremental two
        return None
    is_signature = kind.endswith("signatures")
    if is_signature != (match["sigtar"] is not None):
        return None
    start = parse_time(match["start"])
    end = parse_time(match["end"]) if has_end else start
    if end < start or (not full and end == start):  # an increment takes time
        return None
    if match["volume"]:
        role = "volume"
    elif match["manifest"]:
        role = "manifest"
    else:
        role = "signatures"
    return DuplicityFile(
        name=name,
        full=full,
        role=role,
        start=start,
        end=end,
        volume=int(match["volume"]) if match["volume"] else None,
        encrypted=match["suffix"] == "gpg",
        partial=match["partial"] is not None,
    )


@dataclass(frozen=True)
class BackupSet:
    """The files of one backup in one ``files/`` directory."""

    time: datetime
    start: datetime
    full: bool
    files: tuple[str, ...]
    complete: bool  # manifest, signatures and volumes 1..n are all present

    @property
    def manifest(self) -> str | None:
        for name in self.files:
            parsed = parse_name(name)
            if parsed and parsed.role == "manifest":
                return name
        return None


def backup_sets(names: Iterable[str]) -> list[BackupSet]:
    """Group duplicity file names into backup sets, oldest first.

    Names that are not duplicity's, and ``.part`` files, are ignored. A set is
    keyed by (full, start, end): signatures belong to the set they describe.
    """
    return list(_backup_sets(frozenset(names)))


@lru_cache(maxsize=1024)
def _backup_sets(names: frozenset[str]) -> tuple[BackupSet, ...]:
    groups: dict[tuple[bool, datetime, datetime], list[DuplicityFile]] = {}
    for name in names:
        parsed = parse_name(name)
        if parsed is None or parsed.partial:
            continue
        groups.setdefault((parsed.full, parsed.start, parsed.end), []).append(parsed)
    sets = [
        BackupSet(
            time=end,
            start=start,
            full=full,
            files=tuple(sorted(f.name for f in files)),
            complete=_complete(files),
        )
        for (full, start, end), files in groups.items()
    ]
    return tuple(sorted(sets, key=lambda s: (s.time, not s.full)))


def _complete(files: list[DuplicityFile]) -> bool:
    roles = {f.role for f in files}
    volumes = sorted(f.volume for f in files if f.volume is not None)
    return roles == {"manifest", "signatures", "volume"} and volumes == list(
        range(1, len(volumes) + 1))


def complete_backup_times(names: Iterable[str]) -> list[datetime]:
    """Return the times of the complete backups among these file names, oldest first."""
    return [s.time for s in backup_sets(names) if s.complete]


def manifest_last(names: Iterable[str]) -> list[str]:
    """Return the names ordered so that every manifest comes after every other file."""
    return sorted(names, key=lambda n: (_is_manifest(n), n))


def _is_manifest(name: str) -> bool:
    parsed = parse_name(name)
    return parsed is not None and parsed.role == "manifest"
