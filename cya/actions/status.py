"""``cya status``: is the tree healthy and recent? For people and for monitoring."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cya.catalog import SYSTEM_COPIED, Catalog
from cya.config import Settings
from cya.core.chains import restorable
from cya.core.names import format_time
from cya.core.retention import awaiting_archive
from cya.lock import lock_holder
from cya.tree import Tree


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
    lock: str | None
    interrupted: bool  # a journal of an interrupted backup waits for the next run
    archive: dict | None = None  # with archiving on: archived, awaiting, pending thaws

    def as_json(self) -> dict:
        return {
            "tree": self.tree,
            "last_backup": format_time(self.last_backup) if self.last_backup else None,
            "age_seconds": int(self.age.total_seconds()) if self.age is not None else None,
            "current_leaf": self.current_leaf,
            "levels": self.levels,
            "restorable_backups": self.restorable,
            "longest_chain": self.longest_chain,
            "total_bytes": self.total_bytes,
            "lock_holder": self.lock,
            "interrupted_run_pending": self.interrupted,
            "archive": self.archive,
        }


def run(settings: Settings, now: datetime) -> Status:
    tree = Tree(settings.tree)
    tree.require()
    view = tree.scan()
    points = restorable(view)
    last = view.newest()
    leaf = view.newest_leaf()
    archive = None
    if settings.archive.enabled:
        with Catalog(tree.catalog_path) as catalog:
            done = catalog.archived_year_paths()
            archive = {"archived_years": len(done),
                       "awaiting_years": [y.relpath for y in awaiting_archive(view, done)],
                       "pending_thaws": len(catalog.thaws()),
                       "system_copied_at": catalog.get_meta(SYSTEM_COPIED)}
    return Status(
        tree=str(tree.root),
        last_backup=last,
        age=now - last if last else None,
        current_leaf=str(leaf) if leaf else None,
        levels=len(view.files),
        restorable=len(points),
        longest_chain=max((point.chain_length for point in points), default=0),
        total_bytes=view.total_bytes(),
        lock=lock_holder(tree.lock_path),
        interrupted=tree.journal_path.exists(),
        archive=archive,
    )
