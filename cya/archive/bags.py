"""Bags: a plain POSIX tar of whole duplicity files, written as a stream.

``tar -x`` on a bag gives back the level paths and duplicity files: the first
path of a file carries its bytes, every other path the file has in the tree now
is a hard-link member pointing at it. The stream is deterministic (members in
plan order, owner 0, mode 0600, mtime the backup's time), so the same plan gives
the same bytes. While writing, each member's data offset, size and SHA-256 are
recorded: the bag's manifest, what a ranged fetch and a restore verify against.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import BinaryIO, Protocol

from cya.archive.records import Member
from cya.core.bagging import BagSpec, Blob
from cya.core.names import parse_name

COPY_BUFFER = 1 << 20


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...
    def tell(self) -> int: ...


class _Hashing:
    """Reads a file, hashing what passes; refuses to give more than ``size`` bytes."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.hash = hashlib.sha256()

    def read(self, count: int = -1) -> bytes:
        data = self.stream.read(count)
        self.hash.update(data)
        return data


def _info(path: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o600
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _mtime(blob: Blob) -> int:
    parsed = parse_name(blob.name)
    return int(parsed.end.timestamp()) if parsed else 0


def write_bag(bag: BagSpec, root: Path, sink: Sink) -> list[Member]:
    """Write ``bag``'s files (read under the tree ``root``) to ``sink`` as a tar;
    return its members. Raise OSError if a file cannot be read or changed size."""
    members = []
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = COPY_BUFFER
        for blob in bag.blobs:
            first, *others = blob.paths
            mtime = _mtime(blob)
            with open(root / first, "rb") as stream:
                reader = _Hashing(stream)
                tar.addfile(_info(first, blob.size, mtime), reader)
                if stream.read(1):
                    raise OSError(f"{root / first} grew while it was archived")
            offset = tar.offset - -(-blob.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            for other in others:
                link = _info(other, 0, mtime)
                link.type = tarfile.LNKTYPE
                link.linkname = first
                tar.addfile(link)
            members.append(Member(first, reader.hash.hexdigest(), offset, blob.size,
                                  tuple(others)))
    return members
