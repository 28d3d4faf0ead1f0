"""The bucket's records: one typed definition and one version per format, used by the
writer (archive) and every reader (recover, verify, retrieval, the plain-tools script
documents them).

Structural records stay plain JSON in Standard so plain tools (AWS CLI, jq, tar,
duplicity) can restore without cya; what names the user's data (the file index, the
config) is stored encrypted elsewhere. Everything read from the bucket is checked
before use: a level path must spell a level (``2000/2010/2012/2012-12/2012-12-02``),
a member must be ``LEVEL/files/DUPLICITY-NAME``, digests and sizes must be what they
claim to be — a crafted record can never make cya write outside a tree.

    manifests/GROUP/DIGEST.json   a bag: members, offsets, sizes, SHA-256
    backups/TIME.json             an archived backup: its whole chain, where each file is
    years/YEAR.json               a finished year as the tree held it: every path -> file
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cya.core.names import parse_name, parse_time
from cya.core.timescale import Level, parse_level
from cya.errors import ArchiveError

FORMAT = 2  # of manifests, backup records and year records (1: manifests and years only)
READABLE = (1, 2)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class RecordError(ArchiveError):
    """A record read from the bucket is not one cya writes (damaged or crafted)."""


def level_path(text: object, where: str) -> Level:
    """The Level a record's level path spells. Raise RecordError for anything else
    (absolute, ``..``, not a level)."""
    if not isinstance(text, str):
        raise RecordError(f"{where}: a level path must be a string, not {text!r}",
                          "the record is damaged or not cya's; run: cya archive verify")
    level = parse_level(tuple(text.split("/")))
    if level is None or level.relpath != text:
        raise RecordError(f"{where}: {text!r} is not a level path of a cya tree",
                          "the record is damaged or crafted; it was not used")
    return level


def member_path(text: object, where: str) -> tuple[Level, str]:
    """(level, duplicity name) of a ``LEVEL/files/NAME`` path. Raise RecordError."""
    if not isinstance(text, str) or "/files/" not in text:
        raise RecordError(f"{where}: {text!r} is not a LEVEL/files/NAME path",
                          "the record is damaged or crafted; it was not used")
    level_text, _, name = text.rpartition("/files/")
    level = level_path(level_text, where)
    parsed = parse_name(name)
    if parsed is None or parsed.partial:
        raise RecordError(f"{where}: {name!r} is not a duplicity file name",
                          "the record is damaged or crafted; it was not used")
    return level, name


def _get(data: Mapping, key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecordError(f"{where}: field {key!r} is missing or not a {kind.__name__}",
                          "the record is damaged; run: cya archive verify")
    return value


def _digest(data: Mapping, key: str, where: str) -> str:
    value = _get(data, key, str, where)
    if not _SHA256.fullmatch(value):
        raise RecordError(f"{where}: {key} {value[:20]!r} is not a SHA-256",
                          "the record is damaged; run: cya archive verify")
    return value


def _format(data: object, where: str) -> Mapping:
    if not isinstance(data, dict):
        raise RecordError(f"{where} is not a JSON object", "the record is damaged")
    version = data.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE:
        raise RecordError(f"{where} has format {data.get('format')!r}, not one of {READABLE}",
                          "upgrade cya, or the record is damaged")
    return data


@dataclass(frozen=True)
class Member:
    """One duplicity file in a bag: the tar member with its data, and its other paths."""

    path: str  # LEVEL/files/NAME: the tar member carrying the data
    sha256: str
    offset: int  # of its data in the bag
    size: int
    links: tuple[str, ...] = ()  # other paths of the same file: hard-link members

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    def as_json(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "offset": self.offset,
                "size": self.size, "links": list(self.links)}

    @staticmethod
    def parse(data: object, where: str) -> Member:
        if not isinstance(data, dict):
            raise RecordError(f"{where}: a member is not an object", "the record is damaged")
        path = _get(data, "path", str, where)
        member_path(path, where)
        links = data.get("links", [])
        if not isinstance(links, list):
            raise RecordError(f"{where}: links is not a list", "the record is damaged")
        for link in links:
            member_path(link, where)
        offset, size = _get(data, "offset", int, where), _get(data, "size", int, where)
        if offset < 0 or size < 0:
            raise RecordError(f"{where}: negative offset or size", "the record is damaged")
        return Member(path, _digest(data, "sha256", where), offset, size, tuple(links))


@dataclass(frozen=True)
class BagManifest:
    """``manifests/GROUP/DIGEST.json``: what a bag holds and where."""

    bag: str  # the bag's key
    group: str  # the year the bag's key is filed under
    digest: str  # core.bagging.BagSpec.digest
    size: int
    parts: int
    checksum: str  # S3's composite SHA-256 of the parts
    storage_class: str
    uploaded_at: str
    members: tuple[Member, ...]

    def as_json(self) -> dict:
        return {"format": FORMAT, "bag": self.bag, "year": self.group, "digest": self.digest,
                "size": self.size, "parts": self.parts, "checksum": self.checksum,
                "storage_class": self.storage_class, "uploaded_at": self.uploaded_at,
                "members": [m.as_json() for m in self.members]}

    @staticmethod
    def parse(data: object, where: str) -> BagManifest:
        data = _format(data, where)
        members = _get(data, "members", list, where)
        parsed = tuple(Member.parse(m, where) for m in members)
        size = _get(data, "size", int, where)
        for member in parsed:
            if member.offset + member.size > size:
                raise RecordError(f"{where}: member {member.path} ends past the bag's "
                                  f"{size} bytes", "the record is damaged")
        return BagManifest(
            bag=_get(data, "bag", str, where), group=str(data.get("year", "")),
            digest=_get(data, "digest", str, where), size=size,
            parts=_get(data, "parts", int, where), checksum=_get(data, "checksum", str, where),
            storage_class=_get(data, "storage_class", str, where),
            uploaded_at=_get(data, "uploaded_at", str, where), members=parsed)


@dataclass(frozen=True)
class Stored:
    """Where one duplicity file of a chain or a year is: its bag, offset, size, SHA-256."""

    name: str
    sha256: str
    size: int
    bag: str
    offset: int
    member: str  # the tar member (LEVEL/files/NAME) carrying its data

    def as_json(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "size": self.size, "bag": self.bag,
                "offset": self.offset, "member": self.member}

    @staticmethod
    def parse(data: object, where: str) -> Stored:
        if not isinstance(data, dict):
            raise RecordError(f"{where}: an entry is not an object", "the record is damaged")
        name = _get(data, "name", str, where)
        parsed = parse_name(name)
        if parsed is None or parsed.partial:
            raise RecordError(f"{where}: {name!r} is not a duplicity file name",
                              "the record is damaged or crafted; it was not used")
        member = _get(data, "member", str, where)
        member_path(member, where)
        size, offset = _get(data, "size", int, where), _get(data, "offset", int, where)
        if size < 0 or offset < 0:
            raise RecordError(f"{where}: negative offset or size", "the record is damaged")
        return Stored(name, _digest(data, "sha256", where), size,
                      _get(data, "bag", str, where), offset, member)


@dataclass(frozen=True)
class BackupPoint:
    """``backups/TIME.json``: one archived backup — its whole chain, in the order
    duplicity reads it, as files of one level; enough to restore it with plain tools."""

    time: str  # duplicity time stamp
    level: str  # put every file of the chain in LEVEL/files/ and run duplicity there
    chain: tuple[Stored, ...]
    index: str | None  # key of its encrypted file index, if archived
    archived_at: str

    def as_json(self) -> dict:
        return {"format": FORMAT, "time": self.time, "level": self.level,
                "chain": [f.as_json() for f in self.chain], "index": self.index,
                "archived_at": self.archived_at}

    @staticmethod
    def parse(data: object, where: str) -> BackupPoint:
        data = _format(data, where)
        time = _get(data, "time", str, where)
        try:
            parse_time(time)
        except ValueError:
            raise RecordError(f"{where}: {time!r} is not a backup time",
                              "the record is damaged") from None
        level = level_path(data.get("level"), where).relpath
        chain = tuple(Stored.parse(f, where) for f in _get(data, "chain", list, where))
        index = data.get("index")
        return BackupPoint(time, level, chain, index if isinstance(index, str) else None,
                           str(data.get("archived_at", "")))


@dataclass(frozen=True)
class YearPoint:
    """``years/YEAR.json``: a finished year as the tree held it when it finished."""

    year: str  # the year level's path
    files: Mapping[str, Stored]  # LEVEL/files/NAME -> where its data is
    archived_at: str = ""

    def as_json(self) -> dict:
        return {"format": FORMAT, "year": self.year, "archived_at": self.archived_at,
                "files": {path: stored.as_json() for path, stored in sorted(self.files.items())}}

    @staticmethod
    def parse(data: object, where: str) -> YearPoint:
        data = _format(data, where)
        year = level_path(data.get("year"), where)
        if year.kind != "year":
            raise RecordError(f"{where}: {year} is not a year level", "the record is damaged")
        files = {}
        for path, entry in _get(data, "files", dict, where).items():
            level, _ = member_path(path, where)
            if not (level == year or year.is_ancestor_of(level)):
                raise RecordError(f"{where}: {path} lies outside the year {year}",
                                  "the record is damaged or crafted; it was not used")
            files[path] = Stored.parse(entry, where)
        return YearPoint(year.relpath, files, str(data.get("archived_at", "")))
