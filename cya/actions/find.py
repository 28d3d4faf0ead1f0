"""``cya find PATTERN``: which restorable backups hold paths matching a glob.

Each backup's matches come from its chain's index deltas, filtered first (a match
depends on the path alone), so no backup is decrypted and no full file list built.
"""

from __future__ import annotations

from dataclasses import dataclass

from cya.browse import FileLister
from cya.config import Settings
from cya.core import fileindex
from cya.core.chains import Restorable, restorable
from cya.core.names import format_time
from cya.opentree import open_tree


@dataclass(frozen=True)
class Found:
    backup: Restorable
    matches: tuple[fileindex.Entry, ...]

    def as_json(self) -> dict:
        return {"backup": format_time(self.backup.time), "level": str(self.backup.level),
                "matches": [e.as_json() for e in self.matches]}


def run(settings: Settings, pattern: str) -> list[Found]:
    keep = fileindex.matcher(pattern)
    found = []
    with open_tree(settings, write=False, locked=False) as opened:
        lister = FileLister(opened.tree, opened.catalog, settings, keep)
        for backup in restorable(opened.view):
            files, _ = lister.files(backup)
            if files:
                found.append(Found(backup, tuple(files[p] for p in sorted(files))))
    return found
