"""``cya restore --date D --target DIR``: the newest backup at or before D, exactly —
and never at the cost of anything the user has.

* A target that is, holds, or lies inside what cya protects is refused before
  anything is touched: the tree, cya's cache, the config and passphrase files, a
  whole source, ``/``, ``$HOME`` (a new directory inside a source is fine).
* Duplicity restores into a staging directory inside the target (the same file
  system, so every later step is a rename); only when it finished are its entries
  moved into the target. Into an empty target that is the whole restore at once;
  into a non-empty one (``--force``) it is a merge, file by file: what the backup
  does not hold stays untouched, and what the restore replaces is first moved aside
  into ``TARGET.cya-replaced-TIME/`` under its own relative path. Nothing is deleted.
* The tree is held with a shared lock meanwhile: a backup or trim cannot delete the
  level being read. A wrong ``--path`` is caught from the file index before any
  decryption; the chain's files are checked against the sizes recorded when they
  entered the tree, so a damaged file is named instead of failing deep in duplicity.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import time as wallclock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cya import duplicity, metadata
from cya.browse import FileLister, private_tempdir, show_gap
from cya.clock import iso, show_time
from cya.config import Settings, read_passphrase
from cya.core import fileindex, units
from cya.core.chains import Restorable, bytes_to_read, choose, restorable
from cya.core.names import format_time
from cya.core.treeview import TreeView
from cya.errors import (
    CommandFailed,
    CyaError,
    Interrupted,
    MetadataError,
    UsageError,
    from_os_error,
)
from cya.fsutil import fsync_dir, remove_tree
from cya.hooks import HookContext, run_hooks
from cya.opentree import OpenTree, open_tree
from cya.runs import Run, cache_base
from cya.sshfs import RemoteNames

if TYPE_CHECKING:
    from cya.archive.retrieve import ArchiveFetch

log = logging.getLogger("cya")


@dataclass(frozen=True)
class RestoreRequest:
    asked: datetime  # the --date, parsed
    target: Path  # absolute
    path: str | None = None  # --path as the user wrote it
    force: bool = False
    from_archive: bool = False
    tier: str = "bulk"
    wait: bool = False
    dry_run: bool = False
    max_cost: float | None = None  # refuse a thaw whose estimate is dearer (USD)
    metadata: bool = True  # re-apply what duplicity loses (--no-metadata: don't)
    strict_metadata: bool = False  # exit 1 when some of it could not be re-applied


@dataclass(frozen=True)
class RestorePlan:
    asked: datetime
    backup: Restorable
    bytes_to_read: int
    target: Path
    path: str | None  # relative to / as in the backup, or None for everything
    trimmed_between: bool  # the catalog knows backups between the chosen one and the date
    damaged_between: bool = False  # ... and some of them are damaged, not trimmed
    fetch: ArchiveFetch | None = None  # restoring from the archive: what it takes
    tier: str = "bulk"
    archive_closer: datetime | None = None  # the archive holds a backup nearer the date
    metadata_dir: str | None = None  # where the backup holds cya's metadata (absolute)
    metadata: bool = True
    strict_metadata: bool = False

    def as_json(self) -> dict:
        """``cya restore --dry-run --json``: every time ISO 8601 with its offset."""
        fetch = None
        if self.fetch is not None:
            cost = self.fetch.estimate
            fetch = {"tier": self.tier, "bags": cost.objects, "thawed_bytes": cost.thawed_bytes,
                     "fetched_bytes": cost.fetched_bytes, "hours": cost.hours,
                     "dollars": round(cost.dollars, 2)}
        return {"version": 1, "asked": iso(self.asked), "backup": iso(self.backup.time),
                "level": str(self.backup.level), "full": self.backup.full,
                "chain_length": self.backup.chain_length, "volumes": self.backup.volumes,
                "bytes_to_read": self.bytes_to_read, "target": str(self.target),
                "path": fileindex.shown(self.path) if self.path else None,
                "explanation": self.explain(), "from_archive": fetch,
                "archive_closer": iso(self.archive_closer) if self.archive_closer else None}

    def explain(self) -> str:
        gap = show_gap(self.asked, self.backup.time)
        text = (f"asked {show_time(self.asked)}, restored {show_time(self.backup.time)}"
                f" — {gap}")
        if self.damaged_between:
            text += "; later backups of that period are damaged (run: cya check)"
        elif self.trimmed_between:
            text += "; finer backups of that period were trimmed"
        if self.archive_closer is not None:
            text += (f"; the archive holds {show_time(self.archive_closer)}, nearer: "
                     "add --from-archive for it")
        return text


def protected(settings: Settings) -> list[tuple[Path, str, bool]]:
    """What a restore target must never be or contain: (real path, what it is, whether
    the target may lie inside it)."""
    items = [(settings.tree, "the tree", False), (cache_base(), "cya's cache", False),
             (settings.config_path, "the config file", True),
             (Path("/"), "/", True), (Path.home(), "your home directory", True)]
    if settings.encryption.passphrase_file is not None:
        items.append((settings.encryption.passphrase_file, "the passphrase file", True))
    items += [(source, f"the source {source}", True) for source in settings.sources]
    return [(Path(os.path.realpath(path)), what, inside_ok) for path, what, inside_ok in items]


def check_target(settings: Settings, target: Path, force: bool) -> None:
    """Raise UsageError (nothing touched) for a target a restore could destroy something
    through, or a non-empty one without ``force``."""
    real = Path(os.path.realpath(target))
    for path, what, inside_ok in protected(settings):
        if real == path or path.is_relative_to(real):
            raise UsageError(f"target {target} is or contains {what} ({path})",
                             "restore into a new, empty directory elsewhere")
        if not inside_ok and real.is_relative_to(path):
            raise UsageError(f"target {target} lies inside {what} ({path})",
                             "restore into a new, empty directory elsewhere")
    if target.exists() and not target.is_dir():
        raise UsageError(f"target {target} exists and is not a directory", "choose another")
    try:
        busy = target.is_dir() and any(target.iterdir())
    except OSError as error:
        raise from_os_error(error, f"read the target {target}") from None
    if busy and not force:
        raise UsageError(f"target {target} is not empty",
                         "choose an empty or new directory, or add --force to merge into "
                         "it (what the restore replaces is kept aside, nothing is deleted)")


def backup_path(text: str, opened: OpenTree) -> str:
    """``--path`` as the backup holds it: relative to ``/``, through the source's real
    path when the user gave it by the path the config names (a symlink). Raise
    UsageError for a relative path. A remote source's file may be given as
    ``user@host:/path/...``."""
    text = RemoteNames.of(opened.settings.remote_sources).local(text)
    if not text.startswith("/"):
        raise UsageError(f"--path {text!r} is not an absolute path",
                         "paths in backups are absolute, as when they were backed up: "
                         f"e.g. --path {opened.settings.sources[0]}/...")
    path = Path(os.path.normpath(text))
    for source in opened.settings.sources:
        real = Path(os.path.realpath(source))
        if real != source and path.is_relative_to(source):
            path = real / path.relative_to(source)
    return str(path).strip("/") or "."


def plan(settings: Settings, request: RestoreRequest) -> RestorePlan:
    """Check everything and choose the backup (from the tree, or with ``from_archive``
    from the archive). Raise CyaError (exit 2 for bad input, 1 when nothing is
    restorable at that date)."""
    check_target(settings, request.target, request.force)
    with open_tree(settings, write=False, locked=False) as opened:
        return _plan(opened, request)


def _plan(opened: OpenTree, request: RestoreRequest) -> RestorePlan:
    catalog = opened.catalog
    asked = request.asked
    relative = backup_path(request.path, opened) if request.path else None
    archived_backup = None
    archived = bool(catalog.points() or catalog.archived_years())
    if request.from_archive:
        if not archived:
            raise CyaError("the archive holds no backup yet",
                           "restore from the tree without --from-archive")
        from cya.archive.retrieve import archived_view, plan_fetch

        view = archived_view(catalog)
        backup = _choose(view, asked, "the archive")
        fetch = plan_fetch(catalog, backup, request.tier)
        to_read = fetch.fetch_bytes
        dollars = fetch.estimate.dollars
        if request.max_cost is not None and dollars > request.max_cost:
            raise UsageError(f"restoring {show_time(backup.time)} from the archive would cost "
                             f"about ${dollars:.2f}, more than --max-cost "
                             f"{request.max_cost:.2f}", "nothing was asked of S3; raise "
                             "--max-cost, or choose --tier bulk or a date the tree holds")
    else:
        view = opened.view
        fetch = None
        if archived:
            from cya.archive.retrieve import archived_view

            archived_backup = choose(archived_view(catalog), asked)
        backup = _choose(view, asked, "the tree", archived_backup)
        to_read = bytes_to_read(view, backup)
    if relative is not None:
        _check_path(opened, backup, relative)
    later = [t for t in (r.time for r in catalog.backups())
             if format_time(backup.time) < t <= format_time(asked)]
    present = _present_times(opened.view)
    closer = (archived_backup.time if archived_backup is not None
              and archived_backup.time > backup.time else None)
    record = catalog.backup(format_time(backup.time))
    return RestorePlan(asked, backup, to_read, request.target, relative, bool(later),
                       any(t in present for t in later), fetch, request.tier, closer,
                       record.metadata if record is not None else None, request.metadata,
                       request.strict_metadata)


def _present_times(view: TreeView) -> set[str]:
    """Times of every backup set in the tree, complete or not."""
    return {format_time(s.time) for level in view.levels() for s in view.sets(level)}


def _check_path(opened: OpenTree, backup: Restorable, relative: str) -> None:
    """Raise UsageError when the file index says the backup does not hold ``relative``
    (nothing is decrypted; backups without an index are not checked here)."""
    lister = FileLister(opened.tree, opened.catalog, opened.settings,
                        fileindex.under(relative))
    if lister.chain(format_time(backup.time)) is None:
        return
    files, _ = lister.files(backup)
    if not files:
        raise UsageError(f"{fileindex.shown(relative)} is not in the backup of "
                         f"{show_time(backup.time)}",
                         "paths are absolute, as backed up; look with: cya ls --date D PATH")


def _choose(view, asked: datetime, where: str,
            in_archive: Restorable | None = None) -> Restorable:
    """The backup to restore from ``view``; raise CyaError naming what there is instead
    (``in_archive``: the archive's choice for the same date, when the tree has none)."""
    backup = choose(view, asked)
    if backup is not None:
        return backup
    if in_archive is not None:
        raise CyaError(f"{where} holds no backup at or before {show_time(asked)}",
                       f"the archive holds {show_time(in_archive.time)}: add --from-archive")
    everything = restorable(view)
    if not everything:
        raise CyaError(f"{where} holds no backup yet", "run: cya backup")
    raise CyaError(f"{where} holds no backup at or before {show_time(asked)}",
                   f"the earliest restorable date is {show_time(everything[0].time)}")


@dataclass
class RestoreResult:
    target: Path
    replaced: int = 0  # entries of the target the restore replaced
    aside: Path | None = None  # where those entries are kept
    metadata: list[str] = field(default_factory=list)  # one line per kind re-applied
    metadata_failed: int = 0


def run(settings: Settings, the_plan: RestorePlan, wait: bool = False,
        say: Callable[[str], None] = lambda text: None,
        live: Callable[[str], None] | None = None) -> RestoreResult:
    """Restore per ``the_plan``; raise CyaError if duplicity fails (the target untouched),
    ThawPending while archived bags are still thawing."""
    passphrase = read_passphrase(settings)
    target = the_plan.target
    archived = the_plan.fetch is not None
    # from the archive, the tree is not read: no lock, so a thaw of hours or days never
    # holds up the daily backup
    with open_tree(settings, write=False, locked=not archived, record=archived) as opened:
        source = opened.tree.files_dir(the_plan.backup.level)
        if not archived:
            _check_sizes(opened, the_plan.backup, source)
        context = HookContext(settings.tree, settings.config_path,
                              the_plan.backup.level.relpath, the_plan.backup.time,
                              restore_target=target)
        run_hooks("before_restore", settings.hooks, context)
        try:
            result = _restore(opened, the_plan, passphrase, source, wait, say, live)
        except CyaError as error:
            _on_error(settings, dataclasses.replace(context, status="failed",
                                                    error=error.one_line()))
            raise
        run_hooks("after_restore", settings.hooks, context)
        return result


def _on_error(settings: Settings, context: HookContext) -> None:
    try:
        run_hooks("on_error", settings.hooks, context)
    except CyaError as error:
        log.warning("the on_error hook failed too: %s", error.one_line())


def _restore(opened: OpenTree, the_plan: RestorePlan, passphrase: str | None, source: Path,
             wait: bool, say: Callable[[str], None],
             live: Callable[[str], None] | None = None) -> RestoreResult:
    """Restore into staging inside the target, re-apply metadata, merge into the target."""
    settings = opened.settings
    target = the_plan.target
    run_record = Run.current()
    archived = the_plan.fetch is not None
    created = _make_target(target)
    staging = run_record.own(target / f".cya-restore-{secrets.token_hex(4)}")
    try:
        staging.mkdir(mode=0o700)
        if archived:
            source = _from_archive(opened, the_plan, wait, say, staging / "fetched")
        restored = staging / "restored"
        out = restored / Path(the_plan.path).name if the_plan.path else restored
        if the_plan.path:
            restored.mkdir()
        with private_tempdir() as work, duplicity.Duplicity(settings, passphrase) as runner:
            argv = duplicity.reading_argv(
                "restore", settings=settings,
                source=chain_view(source, the_plan.backup, work / "chain"),
                time=the_plan.backup.time,
                work=work, extra=[*(["--path-to-restore", the_plan.path]
                                    if the_plan.path else []), str(out)])
            free = os.statvfs(target).f_bavail * os.statvfs(target).f_frsize

            def progress() -> None:
                info = os.statvfs(target)
                live(f"restoring: {units.size(max(0, free - info.f_bavail * info.f_frsize))}"
                     " written")

            try:
                runner.run(argv, work / "duplicity.log",
                           doing=f"restore into {target}", live=progress if live else None)
                report = _reapply(the_plan, restored, out, runner, source, work)
            except CommandFailed as error:
                raise _restore_failure(error, the_plan, target) from None
        result = _merge_into(restored, target)
        if report is not None:
            result.metadata = report.lines()
            result.metadata_failed = report.failed
            if the_plan.strict_metadata and report.failed:
                raise MetadataError(
                    f"restored into {target}, but the metadata was not fully re-applied: "
                    + "; ".join(o.line() for o in report.outcomes if o.failed),
                    "restore as root onto a file system with ACLs and xattrs, or "
                    "without --strict-metadata")
        return result
    except Interrupted as error:
        raise Interrupted(f"the restore into {target} was {error.message}",
                          "nothing of it was put in place; run it again") from None
    except BaseException:
        if created:
            remove_tree(staging)
            _remove_if_empty(target)
        raise
    finally:
        remove_tree(staging)
        run_record.disown(staging)


def _reapply(the_plan: RestorePlan, restored: Path, out: Path, runner: duplicity.Duplicity,
             source: Path, work: Path) -> metadata.ApplyReport | None:
    """Re-apply the metadata the backup recorded (cya/metadata.py) to what duplicity
    restored, and take cya's metadata directory out of the restore. None when the
    backup holds none (made before cya recorded it) or ``--no-metadata``."""
    if the_plan.metadata_dir is None:
        return None
    inside = the_plan.metadata_dir.strip("/")
    if the_plan.path is None:
        recorded = restored / inside
        try:
            if not the_plan.metadata or not recorded.is_dir():
                return None
            return metadata.apply(recorded, "", restored)
        finally:
            _remove_with_empty_parents(recorded, restored)
    if not the_plan.metadata:
        return None
    recorded = work / "metadata"
    argv = duplicity.reading_argv(
        "restore", settings=runner.settings,
        source=chain_view(source, the_plan.backup, work / "metadata-chain"),
        time=the_plan.backup.time, work=work,
        extra=["--path-to-restore", inside, str(recorded)])
    try:
        runner.run(argv, work / "metadata.log", doing="restore the recorded metadata")
    except CommandFailed:
        return None  # the backup holds no metadata directory
    return metadata.apply(recorded, the_plan.path, out)


def _remove_with_empty_parents(path: Path, top: Path) -> None:
    """Remove ``path`` and then each parent up to (not including) ``top`` left empty."""
    remove_tree(path)
    for parent in path.parents:
        if parent == top or not parent.is_relative_to(top):
            break
        try:
            parent.rmdir()
        except OSError:
            break


def chain_view(files: Path, backup: Restorable, view: Path) -> Path:
    """A directory holding symlinks to exactly the files of ``backup``'s chain in
    ``files``: duplicity reads every set in its target, so a damaged or foreign set
    beside the chain (a lost manifest, a file dropped in by hand) must not be there."""
    view.mkdir(mode=0o700)
    for backup_set in backup.chain:
        for name in backup_set.files:
            (view / name).symlink_to(files / name)
    return view


def _from_archive(opened: OpenTree, the_plan: RestorePlan, wait: bool,
                  say: Callable[[str], None], fetched: Path) -> Path:
    """Thaw and fetch the chain's members into ``fetched``; return the level's files."""
    from cya.archive.retrieve import fetch, thaw
    from cya.archive.s3 import Remote

    remote = Remote(opened.settings.archive)
    thaw(remote, opened.catalog, the_plan.fetch, the_plan.tier, wait, say)
    fetched.mkdir(mode=0o700)
    received = fetch(remote, the_plan.fetch, fetched)
    say(f"fetched {units.size(received)} from {len(the_plan.fetch.bags)} bag(s), "
        "every SHA-256 verified")
    return fetched / the_plan.backup.level.relpath / "files"


def _check_sizes(opened: OpenTree, backup: Restorable, source: Path) -> None:
    """Raise CyaError naming a file of the chain whose size differs from the size
    recorded when it entered the tree (a truncated volume would otherwise fail deep
    inside duplicity and gpg)."""
    recorded = opened.catalog.digests()
    for backup_set in backup.chain:
        for name in backup_set.files:
            if name not in recorded:
                continue
            try:
                size = (source / name).stat().st_size
            except FileNotFoundError:
                size = None
            if size != recorded[name][0]:
                found = "missing" if size is None else f"{size} bytes"
                raise CyaError(f"{name} in {backup.level} is damaged ({found}, "
                               f"{recorded[name][0]} bytes when it was written)",
                               "run: cya check (it says how to repair it); other backups "
                               "whose chains do not need it still restore")


def _restore_failure(error: CommandFailed, the_plan: RestorePlan, target: Path) -> CyaError:
    if "(error 19)" in error.message:
        return CyaError(f"/{the_plan.path} is not in the backup of "
                        f"{show_time(the_plan.backup.time)}",
                        "check the path with: cya ls --date D PATH")
    if error.message.startswith("disk full"):
        return CyaError(f"disk full: no space left on the file system at "
                        f"{_mount_point(target)} while restoring into {target}",
                        "free some space there or restore elsewhere; nothing was put in "
                        "place", error.detail)
    return error


def _mount_point(path: Path) -> str:
    from cya.errors import mount_point

    return mount_point(path)


def _make_target(target: Path) -> bool:
    """Make the target directory if it does not exist; return whether it was made."""
    try:
        target.mkdir(parents=True, mode=0o700)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        raise from_os_error(error, f"make the target {target}") from None


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _merge_into(restored: Path, target: Path) -> RestoreResult:
    """Move the restored entries into ``target``; an entry the target already has is
    moved aside first (directories are merged). Return what was replaced and where
    it is kept."""
    result = RestoreResult(target)
    stamp = f"{wallclock.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
    aside_root = target.parent / f"{target.name}.cya-replaced-{stamp}"
    if os.stat(target.parent).st_dev != os.stat(target).st_dev:  # a mount point
        aside_root = target / f".cya-replaced-{stamp}"

    def merge(source: Path, into: Path, relative: Path) -> None:
        for entry in sorted(os.listdir(source)):
            here = source / entry
            there = into / entry
            if not os.path.lexists(there):
                os.rename(here, there)
                continue
            if here.is_dir() and not here.is_symlink() and there.is_dir() \
                    and not there.is_symlink():
                merge(here, there, relative / entry)
                info = here.stat()
                os.chmod(there, info.st_mode & 0o7777)
                os.utime(there, ns=(info.st_atime_ns, info.st_mtime_ns))
                continue
            aside = aside_root / relative / entry
            aside.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.rename(there, aside)
            os.rename(here, there)
            result.replaced += 1
            result.aside = aside_root
        fsync_dir(into)

    merge(restored, target, Path("."))
    return result
