"""A snapshot of the tree as data: which duplicity files each level's ``files/`` holds.

Built by ``tree.Tree.scan`` from directory listings and ``lstat`` alone (no
duplicity process); everything here answers questions about it without touching
disk.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cya.core.names import BackupSet, backup_sets
from cya.core.timescale import Level


@dataclass(frozen=True)
class FileInfo:
    size: int  # bytes (st_size)
    inode: int
    links: int


@dataclass(frozen=True)
class TreeView:
    files: Mapping[Level, frozenset[str]]  # level -> duplicity file names in its files/
    info: Mapping[Level, Mapping[str, FileInfo]] = field(default_factory=dict)

    def sets(self, level: Level) -> list[BackupSet]:
        """Every backup set in one level, complete or not, oldest first. An empty file
        counts as missing: no duplicity file is ever empty."""
        sizes = self.info.get(level, {})
        return backup_sets(name for name in self.files.get(level, ())
                           if name not in sizes or sizes[name].size > 0)

    def backups(self, level: Level) -> list[BackupSet]:
        """The complete backups in one level's chain, oldest first."""
        return [s for s in self.sets(level) if s.complete]

    def chained(self) -> frozenset[Level]:
        """Levels holding at least one complete backup."""
        return frozenset(level for level in self.files if self.backups(level))

    def newest(self) -> datetime | None:
        """The newest backup time anywhere in the tree."""
        times = [s.time for level in self.files for s in self.backups(level)]
        return max(times, default=None)

    def newest_leaf(self) -> Level | None:
        """The leaf holding the newest backup: where the next plain-day backup goes."""
        newest = self.newest()
        leaves = [level for level in self.files if level.is_leaf
                  and any(s.time == newest for s in self.backups(level))]
        return max(leaves, default=None)

    def levels(self) -> list[Level]:
        return sorted(self.files)

    def size(self, level: Level, names: tuple[str, ...] | frozenset[str]) -> int:
        sizes = self.info.get(level, {})
        return sum(sizes[name].size for name in names if name in sizes)

    def unique_bytes(self, level: Level) -> int:
        """Bytes only this level holds: files with no link in any other level."""
        return sum(i.size for i in self.info.get(level, {}).values() if i.links == 1)

    def with_files(self, added: Mapping[Level, Mapping[str, FileInfo]]) -> TreeView:
        """This view with files added to levels (new levels included): what a published
        backup did to the tree, without scanning it again."""
        files = dict(self.files)
        info = {level: dict(found) for level, found in self.info.items()}
        for level, found in added.items():
            files[level] = frozenset(files.get(level, frozenset()) | set(found))
            info.setdefault(level, {}).update(found)
        return TreeView(files, info)

    def without_levels(self, gone: Collection[Level]) -> TreeView:
        """This view with levels (and everything inside them) taken out: what a trim did."""
        def kept(level: Level) -> bool:
            return not any(level == g or g.is_ancestor_of(level) for g in gone)

        return TreeView({lv: names for lv, names in self.files.items() if kept(lv)},
                        {lv: found for lv, found in self.info.items() if kept(lv)})

    def total_bytes(self) -> int:
        """Bytes of every duplicity file in the tree, each inode once."""
        seen: dict[int, int] = {}
        for infos in self.info.values():
            for item in infos.values():
                seen[item.inode] = item.size
        return sum(seen.values())
