"""Building blocks for unit tests of the pure core: duplicity file names of whole backup sets,
levels holding linked chains, and trees grown the way the driver places backups (DESIGN.md 1),
all as data (no disk, no duplicity)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from cya.core.names import complete_backup_times, format_time
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import FileInfo, TreeView

# duplicity's time stamps hold 1970..2099; leave room for the steps added to a start
EARLIEST, LATEST = datetime(1971, 1, 1), datetime(2080, 1, 1)
times = st.datetimes(min_value=EARLIEST, max_value=LATEST).map(
    lambda t: t.replace(microsecond=0, tzinfo=UTC))
suffixes = st.sampled_from(["gpg", "gz"])


def names_of_set(start: datetime, end: datetime, full: bool, volumes: int = 1,
                 suffix: str = "gpg") -> list[str]:
    """Every file name of one complete backup set, as duplicity writes them (``.gpg``
    encrypted, ``.gz`` not); the manifest last."""
    stamp = format_time(start) if full else f"{format_time(start)}.to.{format_time(end)}"
    kind = "full" if full else "inc"
    signatures = "full-signatures" if full else "new-signatures"
    manifest_suffix = ".gpg" if suffix == "gpg" else ""
    return ([f"duplicity-{kind}.{stamp}.vol{i}.difftar.{suffix}" for i in range(1, volumes + 1)]
            + [f"duplicity-{signatures}.{stamp}.sigtar.{suffix}",
               f"duplicity-{kind}.{stamp}.manifest{manifest_suffix}"])


@dataclass(frozen=True)
class SetSpec:
    """One backup set as a test means it: what its names say, and how many volumes."""

    start: datetime
    end: datetime
    full: bool
    volumes: int = 1
    suffix: str = "gpg"

    @property
    def names(self) -> list[str]:
        return names_of_set(self.start, self.end, self.full, self.volumes, self.suffix)

    @property
    def manifest(self) -> str:
        return self.names[-1]

    @property
    def last_volume(self) -> str:
        return self.names[self.volumes - 1]


@st.composite
def linked_histories(draw, min_sets: int = 1, max_sets: int = 8) -> list[SetSpec]:
    """A level's sets as duplicity makes them: a full first, then incrementals each starting
    at the time of the set before it, now and then a new full; oldest first."""
    first = draw(times)
    steps = draw(st.lists(st.integers(1, 40 * 86400), min_size=min_sets - 1,
                          max_size=max_sets - 1))
    specs: list[SetSpec] = []
    moment = first
    for index in range(len(steps) + 1):
        if index:
            moment = moment + timedelta(seconds=steps[index - 1])
        full = index == 0 or draw(st.integers(0, 4)) == 0
        start = moment if full else specs[-1].end
        specs.append(SetSpec(start, moment, full, draw(st.integers(1, 3)), draw(suffixes)))
    return specs


def names_of(specs: Iterable[SetSpec]) -> list[str]:
    return [name for spec in specs for name in spec.names]


def chain_of(specs: list[SetSpec], index: int) -> list[SetSpec]:
    """The sets of a linked history duplicity reads for the backup at ``index``: from the
    newest full at or before it."""
    first = max(i for i in range(index + 1) if specs[i].full)
    return specs[first:index + 1]


def grow(backups: Iterable[datetime], volumes: Mapping[datetime, int] | None = None
         ) -> dict[Level, set[str]]:
    """The levels' files after these backups, placed as the driver places them: the first
    is a full into every level of its lineage; later ones diff against the newest backup of
    the base (the deepest level of the lineage holding a chain), seed every new level below
    the base with the base's files, and land in every level from the leaf up to the base."""
    tree: dict[Level, set[str]] = {}
    for time in sorted(backups):
        lineage = leaf_for(time.date()).lineage()
        count = (volumes or {}).get(time, 1)
        chained = [i for i, level in enumerate(lineage)
                   if complete_backup_times(tree.get(level, ()))]
        if not chained:
            new = names_of_set(time, time, True, count)
            targets = lineage
        else:
            base = lineage[chained[-1]]
            newest = complete_backup_times(tree[base])[-1]
            new = names_of_set(newest, time, False, count)
            for level in lineage[chained[-1] + 1:]:
                tree[level] = set(tree[base])
            targets = lineage[chained[-1]:]
        for level in targets:
            tree.setdefault(level, set()).update(new)
    return tree


def size_of(name: str) -> int:
    """A stable, non-zero size for a file name (the same file has the same size everywhere)."""
    return zlib.crc32(name.encode()) % 10_000 + 1


def view_of(tree: Mapping[Level, Iterable[str]], with_info: bool = True) -> TreeView:
    """A TreeView of these levels where a name is one file hardlinked into every level
    holding it: one inode, as many links as levels."""
    files = {level: frozenset(names) for level, names in tree.items()}
    if not with_info:
        return TreeView(files)
    links: dict[str, int] = {}
    for names in files.values():
        for name in names:
            links[name] = links.get(name, 0) + 1
    inodes = {name: number for number, name in enumerate(sorted(links), start=1000)}
    info = {level: {name: FileInfo(size_of(name), inodes[name], links[name]) for name in names}
            for level, names in files.items()}
    return TreeView(files, info)


backup_moments = st.lists(
    st.datetimes(min_value=datetime(1998, 1, 1), max_value=datetime(2031, 12, 31)).map(
        lambda t: t.replace(microsecond=0, tzinfo=UTC)),
    min_size=1, max_size=30, unique=True)
"""Backup times of a tree, in any order (grow sorts them)."""
