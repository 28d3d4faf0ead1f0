"""Bag plans: which files of a finished year go into which bag (DESIGN.md 4).

A finished year is its year directory with whatever child levels remain. Every
file in it is a duplicity file, linked (one inode) into every level whose chain
holds it. Duplicity never rewrites a file and a backup time exists once in a
tree, so a duplicity file name is the identity of its content: a name already
archived (the decade's full at the root of every year's chain, for one) is
never uploaded again. What is stored and verified is the SHA-256 of the bytes,
computed while the bag streams; the plan only decides, from names and sizes.

Rules of the plan, kept by the property tests:

* every file of the year is either reused (its name is archived already) or
  stored in exactly one bag, and every name is stored once;
* a bag holds whole files; a bag is about ``bag_size``: it closes before a file
  that would take it over, and a file larger than ``bag_size`` has a bag of its
  own (the open bag stays open, so a chain's small files stay together);
* files are ordered by backup time, then name, so one backup set's volumes, and
  a chain's sets, sit together and a restore thaws few bags;
* the plan is deterministic: the same files give the same bags and keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cya.core.names import parse_name

BLOCK = 512  # tar block


@dataclass(frozen=True)
class YearFile:
    path: str  # relative to the tree root: LEVEL/files/NAME
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Blob:
    """One content to store: a duplicity file and every path it has in the year."""

    name: str
    size: int
    paths: tuple[str, ...]  # sorted; the first is the tar member with the data

    def tar_bytes(self) -> int:
        """Bytes this blob takes in a bag: a header (and a long-name header) per path,
        the data once, padded to the block size."""
        headers = sum(BLOCK * (3 if len(p) > 99 else 1) for p in self.paths)
        return headers + -(-self.size // BLOCK) * BLOCK


@dataclass(frozen=True)
class BagSpec:
    blobs: tuple[Blob, ...]

    @property
    def data_bytes(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def estimated_bytes(self) -> int:
        return sum(b.tar_bytes() for b in self.blobs) + 2 * BLOCK

    @property
    def digest(self) -> str:
        """SHA-256 over the member list (paths and sizes): the bag's identity, so a rerun
        after a crash finds the bag it already uploaded under the same key."""
        text = "\n".join(f"{b.size} {p}" for b in self.blobs for p in b.paths)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class BagPlan:
    year: str  # the year level's path, e.g. 2000/2010/2012
    bags: tuple[BagSpec, ...]
    reused: tuple[YearFile, ...]  # files whose name is archived already

    @property
    def upload_bytes(self) -> int:
        return sum(b.data_bytes for b in self.bags)

    @property
    def reused_bytes(self) -> int:
        return sum({f.name: f.size for f in self.reused}.values())

    @property
    def files(self) -> int:
        return sum(len(b.paths) for bag in self.bags for b in bag.blobs) + len(self.reused)


class NameConflict(ValueError):
    """Two files share a duplicity name but not a size: the tree or catalog is damaged."""


def _order(name: str) -> tuple:
    parsed = parse_name(name)
    return (parsed.end, parsed.start, name) if parsed else (None, None, name)


def plan_bags(year: str, files: Iterable[YearFile], archived: Mapping[str, int],
              bag_size: int) -> BagPlan:
    """Return the bags that store the year's files not yet archived.

    ``archived`` maps each duplicity name already stored in an earlier bag to its
    size. Raise NameConflict if one name has two sizes (in the year, or against
    the archive).
    """
    paths: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    reused: list[YearFile] = []
    for item in files:
        if sizes.setdefault(item.name, item.size) != item.size:
            raise NameConflict(f"{item.name} has two sizes in {year}")
        if item.name in archived:
            if archived[item.name] != item.size:
                raise NameConflict(f"{item.path} is {item.size} bytes but the archived "
                                   f"{item.name} is {archived[item.name]}")
            reused.append(item)
            continue
        paths.setdefault(item.name, []).append(item.path)
    blobs = [Blob(name, sizes[name], tuple(sorted(paths[name])))
             for name in sorted(paths, key=_order)]
    bags: list[BagSpec] = []
    current: list[Blob] = []
    filled = 0
    for blob in blobs:
        cost = blob.tar_bytes()
        if cost > bag_size:  # a bag of its own; the open bag stays open for what follows
            bags.append(BagSpec((blob,)))
            continue
        if current and filled + cost > bag_size:
            bags.append(BagSpec(tuple(current)))
            current, filled = [], 0
        current.append(blob)
        filled += cost
    if current:
        bags.append(BagSpec(tuple(current)))
    return BagPlan(year, tuple(bags), tuple(sorted(reused, key=lambda f: f.path)))


def part_size(total: int, minimum: int = 32 * 2**20, max_parts: int = 9_000) -> int:
    """The multipart part size for an object of about ``total`` bytes: at least
    ``minimum``, a whole number of MiB, and few enough parts (S3 allows 10,000;
    ``max_parts`` leaves room for the estimate being short)."""
    needed = -(-total // max_parts)
    return max(minimum, -(-needed // 2**20) * 2**20)
