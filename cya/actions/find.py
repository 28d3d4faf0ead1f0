"""``cya find PATTERN``: which restorable backups hold paths matching a glob.

Each backup's matches come from its chain's index deltas, filtered first (a match
depends on the path alone), so no backup is decrypted and no full file list built.
"""

from __future__ import annotations

from dataclasses import dataclass

from cya.browse import FileLister
from cya.clock import iso
from cya.config import Settings
from cya.core import fileindex
from cya.core.chains import Restorable, restorable
from cya.opentree import open_tree
from cya.sshfs import RemoteNames


@dataclass(frozen=True)
class Found:
    backup: Restorable
    matches: tuple[fileindex.Entry, ...]
    archive_cost: float | None = None  # only the archive holds it: about this to restore
    names: RemoteNames = RemoteNames({})  # remote sources' paths as the user spells them

    def as_json(self) -> dict:
        return {"backup": iso(self.backup.time), "level": str(self.backup.level),
                "archive_only": self.archive_cost is not None,
                "archive_cost_usd": (round(self.archive_cost, 2)
                                     if self.archive_cost is not None else None),
                "matches": [self.names.entry_json(e) for e in self.matches]}


def run(settings: Settings, pattern: str) -> list[Found]:
    """Every restorable backup holding a path that matches ``pattern``, the tree's first,
    then those only the archive holds (from their encrypted indexes: nothing is
    thawed)."""
    keep = fileindex.matcher(pattern)
    names = RemoteNames.of(settings.remote_sources)
    found = []
    with open_tree(settings, write=False, locked=False) as opened, \
            FileLister(opened.tree, opened.catalog, settings, keep) as lister:
        in_tree = restorable(opened.view)
        for backup in in_tree:
            files, _ = lister.files(backup)
            if files:
                found.append(Found(backup, tuple(files), names=names))
        for backup in archive_only(opened, {b.time for b in in_tree}):
            files, _ = lister.files(backup, archived=True)
            if files:
                found.append(Found(backup, tuple(files), restore_cost(opened, backup), names))
    return found


def archive_only(opened, in_tree) -> list[Restorable]:
    """Backups only the archive holds, oldest first."""
    if not opened.settings.archive.enabled or not opened.catalog.points():
        return []
    from cya.archive.retrieve import archived_view

    return [backup for backup in restorable(archived_view(opened.catalog))
            if backup.time not in in_tree]


def restore_cost(opened, backup: Restorable) -> float:
    """About what restoring an archived backup costs (bulk retrieval)."""
    from cya.archive.retrieve import plan_fetch

    return plan_fetch(opened.catalog, backup, "bulk").estimate.dollars
