"""``cya backup``: one duplicity backup placed in the timescale tree.

Steps, and the crash points tests kill a real process at (``$CYA_CRASH_AT``):

1. check sources, passphrase, time and tree; open the tree for writing (lock, catalog,
   an interrupted run finished or undone, one scan: cya/opentree.py);
2. plan the placement (pure: core.placement); a base whose chain is broken gets a new
   full instead of an increment nobody could restore;
3. journal "started"                                  -> crash point after-journal
4. seed ``.cya/staging/RUN/files`` with the base's files  -> after-seed
5. run duplicity into the staging target (it writes non-atomically and
   without fsync, which is why it never writes into a level directly)
6. fsync its new files, make them 0600, record their SHA-256; journal "captured"
                                                      -> after-capture
7. publish: build new levels and rename them in       -> before-new-levels,
   after-new-levels; link into the base, manifest last -> before-base-manifest
8. record the backup in the catalog                   -> after-publish
9. remove staging and the journal; drop caches of levels no longer written.

A crash before 6 leaves the tree as it was and the run is undone; a crash at
or after 6 is finished by the next run. Either way the backup is in every
level it belongs to, or in none. Ctrl-C or SIGTERM before 6 undoes the run at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cya import duplicity, metadata, sshfs
from cya.actions.trim import TrimResult, trim_opened
from cya.catalog import CHECK_DAMAGE
from cya.clock import iso, show_time, wall_time
from cya.config import Settings, read_passphrase
from cya.core import fileindex, units
from cya.core import metadata as formats
from cya.core.chains import chain_problem
from cya.core.names import complete_backup_times, format_time
from cya.core.placement import BackupTimeNotAfterNewest, Placement, plan_placement
from cya.core.retention import TrimPlan
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import FileInfo, TreeView
from cya.errors import (
    EXIT_TEMPFAIL,
    ConfigError,
    CyaError,
    Interrupted,
    TimeWentBackwards,
    UsageError,
    by_signal,
)
from cya.fsutil import crash_point, fsync_dir, remove_tree, require_space
from cya.hooks import HookContext, run_hooks
from cya.interrupted import finish, undo
from cya.opentree import OpenTree, open_tree
from cya.runs import cache_base
from cya.tree import INDEX, BackupJournal, Tree, capture, publish, run_dir, seed

if TYPE_CHECKING:
    from cya.actions.archive import ArchiveResult
    from cya.monitoring import Monitor

T = TypeVar("T")
log = logging.getLogger("cya")

FUTURE_SLACK = timedelta(minutes=10)  # a clock a little ahead of the real one is fine


@dataclass(frozen=True)
class BackupRequest:
    now: datetime  # the backup clock (local time; --now or the system clock)
    real_now: datetime  # the system clock, to refuse a --now typo far in the future
    dry_run: bool = False
    trim: bool = True
    archive: bool = True
    allow_future: bool = False
    progress: Callable[[str], None] | None = None
    monitor: Monitor | None = None  # pings start once the lock is held
    live: Callable[[str], None] | None = None  # a status line on a terminal


@dataclass
class BackupResult:
    placement: Placement
    dry_run: bool
    finished: str | None = None  # what was done about an interrupted run
    statistics: dict = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # kept backup, but exit 1
    trim: TrimResult | None = None
    archive: ArchiveResult | None = None
    upcoming: TrimPlan | None = None  # (dry run) what the trim after this backup would do

    def as_json(self) -> dict:
        """``cya backup --json``: every time ISO 8601 with its offset."""
        placement = self.placement
        return {
            "version": 1,
            "dry_run": self.dry_run,
            "time": iso(placement.time),
            "leaf": placement.leaf.relpath,
            "base": placement.base.relpath if placement.base else None,
            "full": placement.full,
            "new_levels": [level.relpath for level in placement.new_levels],
            "reason": placement.reason(),
            "finished_interrupted": self.finished,
            "statistics": self.statistics,
            "unreadable": [fileindex.shown(p) for p in self.unreadable],
            "archive": self.archive.as_json() if self.archive is not None else None,
            "trim": self.trim.as_json() if self.trim is not None else None,
            "would_trim": ([str(d.level) for d in self.upcoming.delete]
                           if self.upcoming is not None else None),
            "warnings": self.warnings,
        }


def resolve_sources(settings: Settings) -> list[tuple[Path, Path]]:
    """Each source as configured and the real directory it names (symlinks resolved:
    duplicity stores a symlink as a link and does not descend through a symlinked
    parent). Raise ConfigError naming every source that names nothing."""
    resolved, problems = [], []
    for source in settings.sources:
        real = Path(os.path.realpath(source))
        if not real.exists():
            if source.is_symlink() or real != source:
                problems.append(f"source {source} leads to {real}, which does not exist")
            else:
                problems.append(f"source {source} does not exist")
            continue
        resolved.append((source, real))
    if problems:
        raise ConfigError("; ".join(problems), f"fix the config {settings.config_path} "
                          "or mount what it names")
    return resolved


def check(settings: Settings, request: BackupRequest) -> tuple[str | None, list]:
    """Check everything checkable before writing; return the passphrase and the sources.

    Raise ConfigError/UsageError naming every problem found.
    """
    refused = duplicity.refused_options(settings.duplicity_options, settings.encryption.mode)
    problems = list(refused)
    sources: list = []
    try:
        sources = resolve_sources(settings)
    except ConfigError as error:
        problems.append(error.message)
    try:
        passphrase = read_passphrase(settings)
    except ConfigError as error:
        problems.append(error.one_line())
        passphrase = None
    if problems:
        raise ConfigError("; ".join(problems), (
            f"take {'it' if len(refused) == 1 else 'them'} out of duplicity_options in "
            f"{settings.config_path}" if problems == refused else
            f"fix the config {settings.config_path} or the paths it names"))
    if not request.allow_future and request.now > request.real_now + FUTURE_SLACK:
        raise UsageError(f"backup time {show_time(request.now)} is in the future (the clock "
                         f"says {show_time(request.real_now)})",
                         "leave out --now, or add --allow-future if you mean it: no backup "
                         "before that time can be made afterwards")
    return passphrase, sources


def run(settings: Settings, request: BackupRequest) -> BackupResult:
    """Make one backup at ``request.now``, then archive (if asked and a bucket is
    configured), then trim (if asked). Raise CyaError on failure.

    A failed archive or trim does not undo or hide the backup: it is kept and the
    error is returned among the warnings. The archive runs before the trim so that
    what the archive now holds can be trimmed in the same run.
    """
    context = HookContext(settings.tree, settings.config_path, "", request.now)
    try:
        passphrase, sources = check(settings, request)
        with open_tree(settings, write=not request.dry_run,
                       locked=not request.dry_run) as opened:
            placement = plan(opened, request.now)
            result = BackupResult(placement, request.dry_run, opened.finished)
            if request.dry_run:
                require_space(opened.tree.root, "the backup")
                from cya.actions.trim import after_next_backup

                result.upcoming = after_next_backup(opened.view, settings, request.now,
                                                    opened.catalog.blobs())
                return result
            if request.monitor is not None:
                request.monitor.start()
            context = dataclasses.replace(context, leaf=placement.leaf.relpath,
                                          backup_time=placement.time)
            run_hooks("before_backup", settings.hooks, context)
            _backup_and_after(opened, placement, passphrase, sources, request, result)
            done = dataclasses.replace(context, status="partial" if result.warnings else "ok",
                                       error="; ".join(result.warnings))
            try:
                run_hooks("after_backup", settings.hooks, done)
            except CyaError as error:
                result.warnings.append(f"backup {show_time(placement.time)} is kept, but the "
                                       f"after_backup hook failed: {error.one_line()}")
    except CyaError as error:
        # any failure once the config was read; not a dry run, nor another run's lock
        if not request.dry_run and error.exit_code != EXIT_TEMPFAIL:
            _on_error(settings, dataclasses.replace(context, status="failed",
                                                    error=error.one_line()))
        raise
    if result.warnings:
        _on_error(settings, dataclasses.replace(done, status="partial",
                                                error="; ".join(result.warnings)))
    return result


def _on_error(settings: Settings, context: HookContext) -> None:
    """Run the on_error hooks; their own failure is only logged (the run's error stands)."""
    try:
        run_hooks("on_error", settings.hooks, context)
    except CyaError as error:
        log.warning("the on_error hook failed too: %s", error.one_line())


def _backup_and_after(opened: OpenTree, placement: Placement, passphrase: str | None,
                      sources: list[tuple[Path, Path]], request: BackupRequest,
                      result: BackupResult) -> None:
    """The backup (remote sources mounted for it), then archive and trim."""
    settings = opened.settings
    if placement.broken is not None:
        result.warnings.append(f"the {placement.base.kind} chain {placement.base} is "
                               f"broken ({placement.broken}); this backup starts a new "
                               "full there; run: cya check")
    with sshfs.mounted(settings.remote_sources, settings.ssh_options) as mounts:
        result.warnings += mounts.warnings()
        every = sources + [(Path(m.source.spelling), m.path) for m in mounts.mounts]
        if not every:
            raise CyaError("no source could be read: every remote source failed to mount",
                           "check the hosts and ssh_options; nothing was written")
        _backup(opened, placement, passphrase, every, result, mounts.foreign(), request.live)
    guard = None
    if request.archive and settings.archive.enabled:
        result.archive = _archive(opened, request.now, result, request.progress, request.live)
        guard = _guard(opened, result.archive)
    if request.trim:
        result.trim = _kept_despite(result, placement.time, "trimming",
                                    lambda: trim_opened(opened, request.now, dry_run=False,
                                                        guard=guard))
        if result.trim is not None:
            result.warnings += result.trim.warnings
    if result.unreadable:
        shown = ", ".join(fileindex.shown(p) for p in result.unreadable[:3])
        more = f" and {len(result.unreadable) - 3} more" if len(result.unreadable) > 3 else ""
        result.warnings.append(
            f"backup {show_time(placement.time)} is kept, but {len(result.unreadable)} "
            f"file(s) could not be read and are not in it: {shown}{more}; fix their "
            "permissions or exclude them")


def plan(opened: OpenTree, now: datetime) -> Placement:
    """Where a backup at ``now`` goes in the tree as it is. Raise TimeWentBackwards."""
    view = opened.view
    time = now.astimezone(UTC).replace(microsecond=0)
    leaf = leaf_for(now.date(), opened.settings.week_start)
    try:
        placement = plan_placement(time, leaf, view.chained(), view.newest())
    except BackupTimeNotAfterNewest as error:
        raise TimeWentBackwards(
            f"backup time {show_time(error.requested)} is not after the newest backup "
            f"in the tree ({show_time(error.newest)})",
            "give a later --now, or leave it out to use the clock",
        ) from None
    if placement.base is not None:
        problem = chain_problem(view.sets(placement.base))
        if problem is None:
            problem = _checked_damage(opened, view, placement.base)
        if problem is not None:
            placement = dataclasses.replace(placement, broken=problem)
    return placement


def _checked_damage(opened: OpenTree, view: TreeView, base: Level) -> str | None:
    """A file of the base's newest chain that ``cya check`` found damaged (and ``cya
    repair`` has not fixed): names alone cannot see a flipped byte."""
    damaged = set(json.loads(opened.catalog.get_meta(CHECK_DAMAGE) or "[]"))
    sets = view.sets(base)
    fulls = [i for i, s in enumerate(sets) if s.full]
    newest = sets[fulls[-1]:] if fulls else sets
    hit = sorted(damaged & {name for s in newest for name in s.files})
    return f"cya check found {hit[0]} damaged" if hit else None


def _backup(opened: OpenTree, placement: Placement, passphrase: str | None,
            sources: list[tuple[Path, Path]], result: BackupResult,
            also_never: list[Path], live: Callable[[str], None] | None = None) -> None:
    """Steps 3-9 for one placement."""
    tree = opened.tree
    time = placement.time
    cache = duplicity.cache_for(opened.identity, placement.leaf.name)
    journal = BackupJournal(
        time=format_time(time),
        leaf=placement.leaf.relpath,
        base=placement.base.relpath if placement.base else None,
        new_levels=[level.relpath for level in placement.new_levels],
        staging=f"backup-{format_time(time)}",
        cache_name=cache.name,
        started_at=wall_time(),
        sources=[[str(written), str(real)] for written, real in sources],
    )
    try:
        with duplicity.Duplicity(opened.settings, passphrase) as runner:
            _make(opened, placement, journal, cache, runner, [real for _, real in sources],
                  also_never, live)
    except (Interrupted, KeyboardInterrupt) as error:
        how = (" " + error.message.removeprefix("interrupted ")
               if isinstance(error, Interrupted) else by_signal(error))
        if journal.phase == "captured":
            raise Interrupted(f"the backup at {show_time(time)} was interrupted{how} while "
                              "it was being put in place",
                              "the next cya backup or trim finishes it") from None
        undo(tree, journal)
        raise Interrupted(f"the backup at {show_time(time)} was interrupted{how} and undone",
                          "nothing was changed; run the backup again") from None
    except CyaError:
        if journal.phase != "captured":
            undo(tree, journal)
        raise
    except OSError as error:
        if journal.phase != "captured":
            undo(tree, journal)
        raise _os_error(error, tree) from None
    added = _added(opened.view, placement, journal, run_dir(tree, journal) / "files")
    finish(tree, opened.catalog, journal, placement)
    opened.changed(opened.view.with_files(added))
    duplicity.drop_caches(cache)
    result.statistics = journal.statistics or {}
    result.unreadable = journal.unreadable or []


def _added(view: TreeView, placement: Placement, journal: BackupJournal, files: Path
           ) -> dict[Level, dict[str, FileInfo]]:
    """The files each level gained from a published backup (new levels: the base's files
    they were seeded with and the new ones), so the tree need not be scanned again."""
    levels = len(placement.link_into)
    new = {}
    for name in journal.new or []:
        info = os.stat(files / name)
        new[name] = FileInfo(info.st_size, info.st_ino, levels)
    seeded = {name: dataclasses.replace(found, links=found.links + len(placement.new_levels))
              for name, found in view.info.get(placement.base, {}).items()
              if name in set(journal.seeded or [])} if placement.base else {}
    added = {level: {**seeded, **new} for level in placement.new_levels}
    if placement.base is not None:
        added[placement.base] = new
    return added


def _archive(opened: OpenTree, now: datetime, result: BackupResult,
             progress: Callable[[str], None] | None,
             live: Callable[[str], None] | None = None) -> ArchiveResult | None:
    """Put what is due off-site; a failure is a warning (the backup stays). When the
    bucket lost something the tree no longer holds, that is a warning too."""
    from cya.actions.archive import archive_opened

    archived = _kept_despite(result, result.placement.time, "archiving",
                             lambda: archive_opened(opened, now, dry_run=False,
                                                    progress=progress, live=live))
    if archived is not None and archived.lost_backups:
        result.warnings.append(
            f"the archive is damaged: the bucket lost {len(archived.lost)} bag(s) and can no "
            f"longer restore {', '.join(archived.lost_backups[:5])}"
            + (" and more" if len(archived.lost_backups) > 5 else "")
            + "; run: cya archive verify")
    return archived


def _guard(opened: OpenTree, archived: ArchiveResult | None):
    """What the trim may let go of: what the archive step saw in the bucket (nothing
    when it failed: the tree keeps what the bucket was not seen to hold)."""
    from cya.actions.archive import Guard

    return Guard(opened, archived.safe if archived is not None else ())


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


def _make(opened: OpenTree, placement: Placement, journal: BackupJournal,
          cache: duplicity.Cache, runner: duplicity.Duplicity, sources: list[Path],
          also_never: list[Path], live: Callable[[str], None] | None = None) -> None:
    """Steps 3-7: journal, seed, duplicity, capture, publish."""
    tree = opened.tree
    journal.save(tree)
    crash_point("after-journal")
    work = run_dir(tree, journal)
    remove_tree(work)
    files = work / "files"
    # a new full (a broken base) starts from nothing; it still joins every level
    journal.seeded = seed(tree, None if placement.full else placement.base, files)
    (work / "tmp").mkdir(mode=0o700)
    crash_point("after-seed")
    never = _never(tree.root, cache.archive_dir) + also_never
    recorded = Path(os.path.realpath(tree.metadata))
    settings = opened.settings
    stats = metadata.record(
        sources, recorded, skip=never, cache=tree.metadata_cache,
        exclude=metadata.exclusion(settings.exclude) if settings.exclude else None)
    log.info("metadata: %s", stats.summary())
    journal.metadata = str(recorded)
    argv = duplicity.backup_argv(
        full=placement.full, settings=opened.settings, sources=sources, target=files,
        cache=cache, tempdir=work / "tmp", time=placement.time, never=never, also=[recorded])
    cache.archive_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    duplicity.adopt_cache(cache)
    seeded = set(journal.seeded)

    def progress() -> None:
        # volumes are written in duplicity's temp dir, then moved into the target
        written = sum(entry.stat().st_size for entry in os.scandir(files)
                      if entry.name not in seeded and entry.is_file())
        written += sum(os.path.getsize(os.path.join(root, name))
                       for root, _dirs, names in os.walk(work / "tmp") for name in names
                       if os.path.isfile(os.path.join(root, name)))
        live(f"backing up: {units.size(written)} written")

    outcome = runner.run(argv, work / "duplicity.log", doing="back up",
                         pass_fds=[opened.lock.fd] if opened.lock.fd is not None else [],
                         live=progress if live else None)
    new = capture(files, journal.seeded)
    seeded_times = complete_backup_times(journal.seeded)
    journal.parent = format_time(seeded_times[-1]) if seeded_times else None
    if placement.time not in complete_backup_times(new):
        raise CyaError("duplicity reported success but wrote no complete backup set",
                       "run with -v and report this")
    _write_index(work / INDEX, duplicity.stored_paths(cache, placement.time), recorded)
    journal.new = new
    journal.digests = {name: _private_digest(files / name) for name in new}
    fsync_dir(files)
    journal.statistics = outcome.statistics()
    journal.unreadable = duplicity.unreadable_files(outcome.records)
    journal.phase = "captured"
    journal.save(tree)
    crash_point("after-capture")
    publish(tree, placement, files, journal.seeded, new, work / "build")


def _never(*paths: Path) -> list[Path]:
    """What a backup must never hold: the tree and the cache, by the path the config
    gives and by their real path (a tree reached through a symlink inside a source)."""
    found: list[Path] = []
    for path in (*paths, cache_base()):
        for spelling in (path, Path(os.path.realpath(path))):
            if spelling not in found:
                found.append(spelling)
    return found


def _private_digest(path: Path) -> list:
    """Make a new duplicity file 0600 (the tree is private, its files too) and return
    [size, SHA-256] of it: what ``cya check`` and a restore verify later."""
    os.chmod(path, 0o600)
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return [size, digest.hexdigest()]


def _write_index(index: Path, changes: Iterable[tuple[str, bytes]], recorded: Path) -> None:
    """Write the backup's file index to ``index`` (zlib of format 2, as the catalog keeps
    it) while duplicity's signature file is read: one record at a time, so a full of
    any size takes no more memory than a daily backup."""
    ours = fileindex.under(str(recorded.parent))  # cya's own state: not the user's files
    marks = _marks(recorded)
    temporary = index.with_name(f".{index.name}.tmp")
    packer = zlib.compressobj(6)
    with open(temporary, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(packer.compress(fileindex.MAGIC))
        pending: list[bytes] = []
        for change, path in changes:
            if ours(path):
                continue
            pending.append(_describe(change, path, marks))
            if len(pending) >= 1024:
                handle.write(packer.compress(b"".join(pending)))
                pending.clear()
        handle.write(packer.compress(b"".join(pending)) + packer.flush())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, index)
    fsync_dir(index.parent)


def _marks(recorded: Path) -> dict[bytes, str]:
    """What cya's metadata (recorded just before duplicity ran) says of each name beyond
    what duplicity keeps: ``a`` ACL, ``x`` xattrs, ``h`` hard links, ``s`` holes.
    Reads the small files only (not the nanosecond times); none, or damaged: no marks."""
    wanted = (formats.ACL_FILE, formats.XATTR_FILE, formats.HARDLINK_FILE, formats.SPARSE_FILE)
    try:
        found = formats.parse({name: (recorded / name).read_bytes() for name in wanted
                               if (recorded / name).exists()})
    except (OSError, formats.FormatError) as error:
        log.warning("the file index has no metadata marks: %s", error)
        return {}
    marks: dict[bytes, str] = {}
    for letter, names in (("a", [acl.name for acl in found.acls]),
                          ("x", [x.name for x in found.xattrs]),
                          ("h", [name for group in found.links for name in group.names]),
                          ("s", [sparse.name for sparse in found.sparse])):
        for name in names:
            marks[name] = marks.get(name, "") + letter
    return marks


def _describe(change: str, path: bytes, marks: dict[bytes, str]) -> bytes:
    """The index record of one changed path, read from the source just after duplicity
    read it: type (a symlink's target), mode, owner, size, mtime and metadata marks (a
    file that vanished since is marked "gone")."""
    if change == "D":
        return fileindex.record(change, path, "gone")
    try:
        whole = b"/" + path if path != b"." else b"/"
        info = os.lstat(whole)
        kind = fileindex.kind_of(info.st_mode)
        target = os.readlink(whole) if kind == "symlink" else None
    except (OSError, ValueError):
        return fileindex.record(change, path, "gone")
    return fileindex.record(change, path, kind, info.st_mode, metadata.user_name(info.st_uid),
                            metadata.group_name(info.st_gid),
                            info.st_size if kind == "file" else None, int(info.st_mtime),
                            marks.get(path, ""), target)


def _os_error(error: OSError, tree: Tree) -> CyaError:
    from cya.errors import from_os_error

    return from_os_error(error, f"write the backup into {tree.root}")
