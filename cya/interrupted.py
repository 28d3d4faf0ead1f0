"""Finishing or undoing a backup that a crash interrupted, from its journal.

``open_tree`` calls ``finish_or_undo`` for every writer (``cya backup``, ``trim``,
``archive``) under the tree lock before it changes anything, so each run starts from a
tree in which every backup is in all the levels it belongs to or in none. (Not to be
confused with ``cya recover``, which rebuilds a lost machine from the bucket.)
"""

from __future__ import annotations

import json
import logging

from cya import duplicity
from cya.catalog import BackupRecord, Catalog
from cya.clock import show_time, wall_time
from cya.core.names import parse_time
from cya.core.placement import Placement
from cya.errors import TreeError
from cya.fsutil import crash_point, remove_tree
from cya.tree import INDEX, BackupJournal, Tree, empty_trash, level_of, publish, run_dir

log = logging.getLogger("cya")


def finish(tree: Tree, catalog: Catalog, journal: BackupJournal, placement: Placement) -> None:
    """Steps 9-10: catalog row (with the new files' SHA-256), then staging and journal
    removed."""
    stats = journal.statistics or {}

    def count(key: str) -> int | None:
        return int(stats[key]) if key in stats else None

    catalog.record_backup(BackupRecord(
        time=journal.time, leaf=journal.leaf, base=journal.base, full=placement.full,
        new_levels=" ".join(journal.new_levels), started_at=journal.started_at,
        finished_at=wall_time(), source_files=count("SourceFiles"),
        source_bytes=count("SourceFileSize"), new_bytes=count("TotalDestinationSizeChange"),
        unreadable=len(journal.unreadable or []), parent=journal.parent,
        sources=json.dumps(journal.sources) if journal.sources else None,
        metadata=journal.metadata,
    ), index=_read_index(run_dir(tree, journal)),
        files=[(name, size, digest) for name, (size, digest) in (journal.digests or {}).items()])
    crash_point("after-publish")
    remove_tree(run_dir(tree, journal))
    journal.clear(tree)


def _read_index(work) -> bytes | None:
    try:
        return (work / INDEX).read_bytes()
    except FileNotFoundError:
        return None


def undo(tree: Tree, journal: BackupJournal) -> None:
    """Forget a run that did not capture a backup: nothing of it was published."""
    remove_tree(run_dir(tree, journal))
    journal.clear(tree)


def finish_or_undo(tree: Tree, catalog: Catalog, identity: str) -> str | None:
    """Finish what a crash interrupted: empty the trash of a trim, then finish or undo a
    backup. Return what was done about a backup, or None if there was none."""
    removed = empty_trash(tree)
    if removed:
        log.info("finished removing %d level(s) an interrupted trim had taken out", removed)
    journal = BackupJournal.load(tree)
    for leftover in tree.staging.iterdir():
        if journal is None or leftover.name != journal.staging:
            remove_tree(leftover)
    if journal is None:
        return None
    when = show_time(parse_time(journal.time))
    if journal.phase != "captured":
        undo(tree, journal)
        # duplicity may have left a half-written manifest in the leaf's cache
        duplicity.drop_caches(duplicity.Cache(duplicity.cache_root(identity),
                                              journal.cache_name), keep=False)
        return f"an interrupted backup at {when} was undone (it had not finished)"
    placement = Placement(
        time=parse_time(journal.time), leaf=level_of(journal.leaf),
        base=level_of(journal.base),
        new_levels=tuple(level_of(path) for path in journal.new_levels),
    )
    work = run_dir(tree, journal)
    if not (work / "files").is_dir():
        raise TreeError(f"the interrupted backup at {when} lost its staging files",
                        f"move {tree.journal_path} away and run again")
    publish(tree, placement, work / "files", journal.seeded or [], journal.new or [],
            work / "build")
    finish(tree, catalog, journal, placement)
    return f"an interrupted backup at {when} was completed"

