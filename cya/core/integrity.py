"""What ``cya check`` can say about a tree from its file names alone, and which files
it re-reads on a given run.

* **Which files a run reads.** ``--read-data-subset`` takes restic's two forms. Every
  duplicity name has a fixed *point* on a circle of 2**64 (the first 8 bytes of the
  SHA-256 of its name), so the choice depends on the name only, never on the order
  of a listing or on what else the tree holds. ``n/m`` reads the n-th of m equal arcs
  (``1/3``, ``2/3`` and ``3/3`` read every file exactly once between them). ``P%``
  reads an arc of P% that starts where the previous ``P%`` run stopped (the position
  is kept in the catalog), so ``ceil(100 / P)`` runs read every file.
* **Chains by name.** Every set of a level must be complete (manifest, signatures,
  volumes 1..n) and every incremental must follow a complete set of the same level
  (``core.chains.chain_problem`` says whether the newest chain may still be extended).
* **Names that belong in a level and are not there.** A duplicity file belongs in every
  level holding another file of its backup set, and in every existing level its backup
  was placed in (the catalog's leaf, base and new levels of that backup).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cya.core.chains import chain_problem
from cya.core.names import BackupSet, backup_sets, format_time, parse_name
from cya.core.timescale import Level
from cya.core.treeview import TreeView

CIRCLE = 1 << 64
_SLICE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_SHARE = re.compile(r"\s*(\d+)(?:\.(\d+))?\s*%\s*")


@dataclass(frozen=True)
class Subset:
    """A ``--read-data-subset``: an arc of the circle of name points."""

    text: str
    slice: tuple[int, int] | None = None  # n, m: the n-th of m arcs
    share: int = 0  # for "P%": the arc's length (of CIRCLE), started where the last stopped

    @property
    def rotating(self) -> bool:
        return self.slice is None

    def arc(self, position: int) -> tuple[int, int]:
        """(start, length) of the arc this run reads; ``position`` is where the previous
        rotating run stopped (ignored for n/m)."""
        if self.slice is not None:
            n, m = self.slice
            start = -(-(n - 1) * CIRCLE // m)  # ceil: the arcs of 1/m..m/m partition it
            return start, -(-n * CIRCLE // m) - start
        return position % CIRCLE, self.share

    def next_position(self, position: int) -> int:
        """Where the next rotating run starts."""
        start, length = self.arc(position)
        return (start + length) % CIRCLE


def parse_subset(text: str) -> Subset:
    """``n/m`` (1 <= n <= m) or ``P%`` (0 < P <= 100). Raise ValueError saying what is
    wrong."""
    match = _SLICE.fullmatch(text)
    if match:
        n, m = int(match[1]), int(match[2])
        if not 1 <= n <= m:
            raise ValueError(f"{text!r}: n/m needs 1 <= n <= m")
        return Subset(text.strip(), slice=(n, m))
    match = _SHARE.fullmatch(text)
    if match:
        whole, fraction = match[1], match[2] or ""
        numerator, denominator = int(whole + fraction), 100 * 10 ** len(fraction)
        if not 0 < numerator <= denominator:
            raise ValueError(f"{text!r}: a share is more than 0% and at most 100%")
        return Subset(text.strip(), share=-(-numerator * CIRCLE // denominator))
    raise ValueError(f"{text!r} is neither n/m (the n-th of m slices) nor a share like 10%")


def point(name: str) -> int:
    """Where a duplicity name lies on the circle: fixed by the name alone."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big")


def selected(name: str, start: int, length: int) -> bool:
    """Whether ``name`` lies on the arc (start, length)."""
    return (point(name) - start) % CIRCLE < length


# Chains by name ---------------------------------------------------------------------


def lacks(backup_set: BackupSet) -> list[str]:
    """What an incomplete backup set lacks, as far as its names can tell."""
    parsed = [p for p in (parse_name(n) for n in backup_set.files) if p is not None]
    roles = {p.role for p in parsed}
    volumes = sorted(p.volume for p in parsed if p.volume is not None)
    missing = []
    if "manifest" not in roles:
        missing.append("its manifest")
    if "signatures" not in roles:
        missing.append("its signatures")
    if not volumes:
        missing.append("its volumes")
    else:
        gaps = sorted(set(range(1, volumes[-1] + 1)) - set(volumes))
        if gaps:
            missing.append(("volume " if len(gaps) == 1 else "volumes ")
                           + ", ".join(str(g) for g in gaps))
    return missing


def set_problems(sets: list[BackupSet]) -> list[str]:
    """Every problem the names of one level's sets show, oldest first: incomplete sets
    (an empty file counts as missing), incrementals that follow no complete set, and a
    level without a full. Then, if the newest chain must not be extended, why."""
    problems = []
    complete = {s.time for s in sets if s.complete}
    for backup_set in sets:
        when = format_time(backup_set.time)
        if not backup_set.complete:
            problems.append(f"the backup of {when} lacks {' and '.join(lacks(backup_set))}")
        elif not backup_set.full and backup_set.start not in complete:
            problems.append(f"the backup of {when} follows {format_time(backup_set.start)}, "
                            "which is missing or incomplete there")
    if sets and not any(s.full for s in sets):
        problems.append(f"no full backup before {format_time(sets[0].time)}")
    if problems:
        newest = chain_problem(sets)
        problems.append("its newest chain is sound: only older backups are affected"
                        if newest is None else
                        "its newest chain is broken: the next backup there starts a new full")
    return problems


# Names that belong in a level ----------------------------------------------------------


def placed_levels(leaf: Level, base: Level | None,
                  new_levels: Iterable[Level]) -> frozenset[Level]:
    """The levels a backup was placed in: its base, its new levels and its leaf."""
    return frozenset({leaf, *new_levels, *((base,) if base is not None else ())})


def _set_key(name: str) -> tuple[bool, datetime, datetime] | None:
    parsed = parse_name(name)
    if parsed is None or parsed.partial:
        return None
    return parsed.full, parsed.start, parsed.end


def missing(view: TreeView, recorded: Collection[str],
            placed: Mapping[datetime, Collection[Level]]) -> dict[str, tuple[Level, ...]]:
    """Recorded names absent from levels they belong in: name -> those levels (sorted).

    A name belongs in every level holding another file of its backup set, and in every
    level of the tree its backup was placed in (``placed``: backup time -> levels)."""
    holders: dict[str, set[Level]] = {}
    set_levels: dict[tuple, set[Level]] = {}
    for level, names in view.files.items():
        for name in names:
            holders.setdefault(name, set()).add(level)
            key = _set_key(name)
            if key is not None:
                set_levels.setdefault(key, set()).add(level)
    found = {}
    for name in recorded:
        key = _set_key(name)
        if key is None:
            continue
        expected = set_levels.get(key, set()) | {
            level for level in placed.get(key[2], ()) if level in view.files}
        lacking = expected - holders.get(name, set())
        if lacking:
            found[name] = tuple(sorted(lacking))
    return found


def needing(view: TreeView, name: str) -> list[datetime]:
    """The backups whose chains need the file ``name``: its own and every incremental
    built on it, in every level holding a file of its set, oldest first."""
    key = _set_key(name)
    if key is None:
        return []
    times: set[datetime] = set()
    for names in view.files.values():
        sets = backup_sets(names)
        if not any((s.full, s.start, s.time) == key for s in sets):
            continue
        chain = {key[2]}
        for backup_set in sets:
            if not backup_set.full and backup_set.start in chain:
                chain.add(backup_set.time)
        times |= chain
    return sorted(times)
