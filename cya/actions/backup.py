"""``cya backup``: one duplicity backup placed in the timescale tree.

Steps, and the crash points tests kill a real process at (``$CYA_CRASH_AT``):

1. check sources, passphrase and tree; take the tree lock;
2. finish or undo an interrupted run from the journal (recover);
3. plan the placement (pure: core.placement);
4. journal "started"                                  -> crash point after-journal
5. seed ``.cya/staging/RUN/files`` with the base's files  -> after-seed
6. run duplicity into the staging target (it writes non-atomically and
   without fsync, which is why it never writes into a level directly)
7. fsync its new files; journal "captured"            -> after-capture
8. publish: build new levels and rename them in       -> before-new-levels,
   after-new-levels; link into the base, manifest last -> before-base-manifest
9. record the backup in the catalog                   -> after-publish
10. remove staging and the journal; drop caches of levels no longer written.

A crash before 7 leaves the tree as it was and the run is undone; a crash at
or after 7 is finished by the next run. Either way the backup is in every
level it belongs to, or in none.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from cya import duplicity, execute
from cya.actions.trim import TrimResult, trim_locked
from cya.catalog import Catalog
from cya.clock import show_time, wall_time
from cya.config import Settings, read_passphrase
from cya.core import fileindex
from cya.core.names import complete_backup_times, format_time
from cya.core.placement import BackupTimeNotAfterNewest, Placement, plan_placement
from cya.core.retention import awaiting_archive
from cya.core.timescale import leaf_for
from cya.errors import ConfigError, CyaError, TimeWentBackwards
from cya.fsutil import atomic_write, crash_point, remove_tree
from cya.lock import TreeLock
from cya.recovery import finish, recover, undo
from cya.tree import INDEX, BackupJournal, Tree, capture, publish, run_dir, seed

if TYPE_CHECKING:
    from cya.actions.archive import ArchiveResult

T = TypeVar("T")


@dataclass
class BackupResult:
    placement: Placement
    dry_run: bool
    recovered: str | None = None  # what recovery did about an interrupted run
    statistics: dict = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # kept backup, but exit 1
    trim: TrimResult | None = None
    archive: ArchiveResult | None = None


def check(settings: Settings) -> str | None:
    """Check everything checkable before writing; return the passphrase.

    Raise ConfigError naming every problem found.
    """
    problems = []
    for source in settings.sources:
        if not source.exists():
            problems.append(f"source {source} does not exist")
    try:
        passphrase = read_passphrase(settings)
    except ConfigError as error:
        problems.append(error.one_line())
        passphrase = None
    Tree(settings.tree).require()
    if problems:
        raise ConfigError("; ".join(problems), f"fix the config {settings.config_path} "
                          "or the paths it names")
    return passphrase


def run(settings: Settings, now: datetime, dry_run: bool = False,
        trim: bool = True, archive: bool = True,
        progress: Callable[[str], None] | None = None) -> BackupResult:
    """Make one backup at ``now``, then archive finished years (if ``archive`` and a
    bucket is configured), then trim (if ``trim``). Raise CyaError on failure.

    A failed archive or trim does not undo or hide the backup: it is kept and the
    error is returned among the warnings. The archive runs before the trim so that
    a year archived now can be trimmed in the same run.
    """
    passphrase = check(settings)
    tree = Tree(settings.tree)
    with TreeLock(tree.lock_path) as lock, Catalog(tree.catalog_path) as catalog:
        recovered = None if dry_run else recover(tree, catalog, settings)
        view = tree.scan()
        time = now.replace(microsecond=0)
        leaf = leaf_for(now.date(), settings.week_start)
        try:
            placement = plan_placement(time, leaf, view.chained(), view.newest())
        except BackupTimeNotAfterNewest as error:
            raise TimeWentBackwards(
                f"backup time {show_time(error.requested)} is not after the newest backup "
                f"in the tree ({show_time(error.newest)})",
                "give a later --now, or leave it out to use the clock",
            ) from None
        result = BackupResult(placement, dry_run, recovered)
        if dry_run:
            return result
        cache = duplicity.cache_for(catalog.tree_id, leaf.name)
        journal = BackupJournal(
            time=format_time(time),
            leaf=leaf.relpath,
            base=placement.base.relpath if placement.base else None,
            new_levels=[level.relpath for level in placement.new_levels],
            staging=f"backup-{format_time(time)}",
            cache_name=cache.name,
            started_at=wall_time(),
        )
        try:
            _make(tree, settings, placement, journal, cache, passphrase, lock.fd)
        except OSError as error:
            raise _os_error(error, tree) from None
        finish(tree, catalog, journal, placement)
        duplicity.drop_caches(cache)
        result.statistics = journal.statistics or {}
        result.unreadable = journal.unreadable or []
        if archive and settings.archive.enabled:
            result.archive = _archive(tree, catalog, settings, time, result, progress)
        if trim:
            result.trim = _kept_despite(result, time, "trimming",
                                        lambda: trim_locked(tree, settings, now, dry_run=False))
        if result.unreadable:
            shown = ", ".join(result.unreadable[:3])
            more = f" and {len(result.unreadable) - 3} more" if len(result.unreadable) > 3 else ""
            result.warnings.append(
                f"backup {show_time(time)} is kept, but {len(result.unreadable)} file(s) could not "
                f"be read and are not in it: {shown}{more}; fix their permissions or exclude them")
        return result


def _archive(tree: Tree, catalog: Catalog, settings: Settings, time: datetime,
             result: BackupResult, progress: Callable[[str], None] | None
             ) -> ArchiveResult | None:
    """Archive the finished years not yet archived, if there are any (boto3 is loaded
    only then: most days there is nothing to do)."""
    if not awaiting_archive(tree.scan(), catalog.archived_year_paths()):
        return None
    from cya.actions.archive import archive_locked

    return _kept_despite(result, time, "archiving", lambda: archive_locked(
        tree, catalog, settings, dry_run=False, progress=progress))


def _kept_despite(result: BackupResult, time: datetime, doing: str, step: Callable[[], T]
                  ) -> T | None:
    """Run a step that follows the backup; its failure becomes a warning (exit 1), and the
    backup stays."""
    try:
        return step()
    except CyaError as error:
        reason = error.one_line()
    except OSError as error:
        reason = str(error)
    result.warnings.append(f"backup {show_time(time)} is kept, but {doing} failed: {reason}")
    return None


def _make(tree: Tree, settings: Settings, placement: Placement, journal: BackupJournal,
          cache: duplicity.Cache, passphrase: str | None, lock_fd: int | None) -> None:
    """Steps 4-8: journal, seed, duplicity, capture, publish."""
    journal.save(tree)
    crash_point("after-journal")
    work = run_dir(tree, journal)
    remove_tree(work)
    files = work / "files"
    journal.seeded = seed(tree, placement.base, files)
    (work / "tmp").mkdir(mode=0o700)
    crash_point("after-seed")
    log_file = work / "duplicity.log"
    argv = duplicity.backup_argv(
        full=placement.full, settings=settings, target=files, cache=cache,
        tempdir=work / "tmp", time=placement.time, log_file=log_file,
        never=[tree.root, cache.archive_dir],
    )
    cache.archive_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    duplicity.adopt_cache(cache)
    completed = execute.run(argv, env=duplicity.environment(passphrase),
                            secrets=[passphrase or ""],
                            pass_fds=[lock_fd] if lock_fd is not None else [])
    records = duplicity.parse_log(log_file.read_text(errors="replace")) if log_file.exists() else []
    if completed.returncode != 0:
        undo(tree, journal)
        if completed.signalled:
            raise CyaError(f"backup interrupted by signal {completed.signalled}",
                           "nothing was changed; run the backup again")
        raise duplicity.failure(completed.returncode, records, completed.tail, settings)
    new = capture(files, journal.seeded)
    index = work / INDEX
    atomic_write(index, fileindex.encode(_describe(duplicity.file_changes(records))))
    seeded_times = complete_backup_times(journal.seeded)
    journal.parent = format_time(seeded_times[-1]) if seeded_times else None
    if placement.time not in complete_backup_times(new):
        undo(tree, journal)
        raise CyaError("duplicity reported success but wrote no manifest for this backup",
                       "run with -v and report this", "\n".join(completed.tail))
    journal.new = new
    journal.statistics = duplicity.statistics(records)
    journal.unreadable = duplicity.unreadable_files(records)
    journal.phase = "captured"
    journal.save(tree)
    crash_point("after-capture")
    publish(tree, placement, files, journal.seeded, new, work / "build")


def _describe(changes: list[tuple[str, str]]) -> list[fileindex.Change]:
    """Each changed path with its type, size and mtime, read from the source just after
    duplicity read it (a file that vanished since is marked "gone")."""
    described = []
    for change, path in changes:
        if change == "D":
            described.append(fileindex.Change(change, fileindex.Entry(path, "gone", None, None)))
            continue
        try:
            info = os.lstat(os.path.join("/", path))
        except OSError:
            described.append(fileindex.Change(change, fileindex.Entry(path, "gone", None, None)))
            continue
        kind = ("dir" if stat.S_ISDIR(info.st_mode) else "symlink" if stat.S_ISLNK(info.st_mode)
                else "file" if stat.S_ISREG(info.st_mode) else "other")
        described.append(fileindex.Change(change, fileindex.Entry(
            path, kind, info.st_size if kind == "file" else None, int(info.st_mtime))))
    return described


def _os_error(error: OSError, tree: Tree) -> CyaError:
    if error.errno == 28:
        return CyaError(f"disk full: no space left in {tree.root}",
                        "free some space and run the backup again; no earlier backup was touched")
    return CyaError(f"cannot write the tree: {error}", "check the tree's file system")
