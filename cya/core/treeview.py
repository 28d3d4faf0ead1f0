"""A snapshot of the tree as data: which duplicity files each level's ``files/`` holds.

Built by ``tree.Tree.scan`` from directory listings alone (no duplicity
process); everything here answers questions about it without touching disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cya.core.names import BackupSet, backup_sets
from cya.core.timescale import Level


@dataclass(frozen=True)
class TreeView:
    files: Mapping[Level, frozenset[str]]  # level -> duplicity file names in its files/

    def backups(self, level: Level) -> list[BackupSet]:
        """The complete backups in one level's chain, oldest first."""
        return [s for s in backup_sets(self.files.get(level, ())) if s.complete]

    def chained(self) -> frozenset[Level]:
        """Levels holding at least one complete backup."""
        return frozenset(level for level in self.files if self.backups(level))

    def newest(self) -> datetime | None:
        """The newest backup time anywhere in the tree."""
        times = [s.time for level in self.files for s in self.backups(level)]
        return max(times, default=None)

    def levels(self) -> list[Level]:
        return sorted(self.files)
