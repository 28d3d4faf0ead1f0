"""``cya status``: is the tree healthy and recent? For people and for monitoring.

It takes no lock (it must answer while a backup runs) and writes nothing; who holds
the lock comes from the kernel (``/proc/locks``), readers included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from cya.catalog import ARCHIVE_DAMAGE, SYSTEM_COPIED
from cya.clock import iso, iso_record
from cya.config import Settings
from cya.core.chains import restorable
from cya.core.names import parse_time
from cya.core.retention import awaiting_archive, eligible
from cya.lock import lock_holders
from cya.opentree import open_tree


@dataclass(frozen=True)
class Status:
    tree: str
    last_backup: datetime | None
    age: timedelta | None
    current_leaf: str | None
    levels: int
    restorable: int
    longest_chain: int
    total_bytes: int
    lock: str | None  # who holds the lock, or None
    running: bool  # a backup (or another writer) runs now
    interrupted: bool  # a journal of an interrupted backup waits for the next run
    archive: dict | None = None  # with archiving on: archived, awaiting, pending thaws

    @property
    def in_future(self) -> bool:
        """The newest backup is later than now: a clock or ``--now`` mistake that blocks
        every later backup until that time."""
        return self.age is not None and self.age < -timedelta(minutes=10)

    def as_json(self) -> dict:
        return {
            "version": 1,
            "tree": self.tree,
            "last_backup": iso(self.last_backup) if self.last_backup else None,
            "age_seconds": int(self.age.total_seconds()) if self.age is not None else None,
            "current_leaf": self.current_leaf,
            "levels": self.levels,
            "restorable_backups": self.restorable,
            "longest_chain": self.longest_chain,
            "total_bytes": self.total_bytes,
            "lock_holder": self.lock,
            "backup_running": self.running,
            "interrupted_run_pending": self.interrupted,
            "newest_in_future": self.in_future,
            "archive": self.archive,
        }


def archive_state(opened, last: datetime | None) -> dict:
    """What the bucket holds compared with the tree: the off-site lag, what is due and
    not sent, and damage the last archive run found."""
    catalog = opened.catalog
    view = opened.view
    points = catalog.points()
    newest = parse_time(points[-1].time) if points else None
    stored = set(catalog.archived_sizes())
    due = {n for level in eligible(view, opened.settings.archive.cadence)
           for n in view.files.get(level, ())}
    return {
        "cadence": opened.settings.archive.cadence,
        "archived_backups": len(points),
        "newest_archived": iso(newest) if newest else None,
        "lag_seconds": (int((last - newest).total_seconds()) if last and newest
                        else None),
        "files_due_not_archived": len(due - stored - set(catalog.pruned_sizes())),
        "archived_years": len(catalog.archived_years()),
        "awaiting_years": [y.relpath for y in awaiting_archive(view,
                                                              catalog.archived_year_paths())],
        "damaged": json.loads(catalog.get_meta(ARCHIVE_DAMAGE) or "[]"),
        "pending_thaws": len(catalog.thaws()),
        "system_copied_at": iso_record(catalog.get_meta(SYSTEM_COPIED)),
    }


def run(settings: Settings, now: datetime) -> Status:
    with open_tree(settings, write=False, locked=False) as opened:
        view = opened.view
        tree = opened.tree
        points = restorable(view)
        last = view.newest()
        leaf = view.newest_leaf()
        archive = None
        if settings.archive.enabled:
            archive = archive_state(opened, last)
        holders = lock_holders(tree.lock_path)
        writing = any(h.exclusive for h in holders)
        journal = tree.journal_path.exists()
        return Status(
            tree=str(tree.root),
            last_backup=last,
            age=now - last if last else None,
            current_leaf=str(leaf) if leaf else None,
            levels=len(view.files),
            restorable=len(points),
            longest_chain=max((point.chain_length for point in points), default=0),
            total_bytes=view.total_bytes(),
            lock="; ".join(str(h) for h in holders) or None,
            running=writing,
            interrupted=journal and not writing,
            archive=archive,
        )
