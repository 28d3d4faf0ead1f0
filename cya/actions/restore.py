"""``cya restore --date D --target DIR``: the newest backup at or before D, exactly.

The restore goes into a staging directory beside the target and is renamed into
place only when duplicity finished, so an interrupted restore never leaves a
half tree looking whole. The tree is held with a shared lock meanwhile: a
backup or trim cannot delete the level being read.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from cya import duplicity, execute
from cya.browse import private_tempdir, show_gap
from cya.catalog import Catalog
from cya.clock import show_time
from cya.config import Settings, read_passphrase
from cya.core.chains import Restorable, bytes_to_read, choose, restorable
from cya.core.dates import DATE_EXAMPLES, parse_when
from cya.core.names import format_time
from cya.errors import CyaError, UsageError
from cya.fsutil import fsync_dir, remove_tree
from cya.lock import TreeLock
from cya.tree import Tree

if TYPE_CHECKING:
    from cya.archive.retrieve import ArchiveFetch


@dataclass(frozen=True)
class RestorePlan:
    asked: datetime
    backup: Restorable
    bytes_to_read: int
    target: Path
    path: str | None  # relative to / as in the backup, or None for everything
    trimmed_between: bool  # the catalog knows backups between the chosen one and the date
    fetch: ArchiveFetch | None = None  # restoring from the archive: what it takes
    tier: str = "bulk"
    archive_closer: datetime | None = None  # the archive holds a backup nearer the date

    def explain(self) -> str:
        gap = show_gap(self.asked, self.backup.time)
        text = (f"asked {show_time(self.asked)}, restored {show_time(self.backup.time)}"
                f" — {gap}")
        if self.trimmed_between:
            text += "; finer backups of that period were trimmed"
        if self.archive_closer is not None:
            text += (f"; the archive holds {show_time(self.archive_closer)}, nearer: "
                     "add --from-archive for it")
        return text


def parse_date(text: str, now: datetime, local: tzinfo) -> datetime:
    try:
        return parse_when(text, now, local)
    except ValueError:
        raise UsageError(f"--date {text!r} is not a date", f"use e.g. {DATE_EXAMPLES}") from None


def plan(settings: Settings, now: datetime, local: tzinfo, date_text: str, target: Path,
         path: str | None, force: bool, from_archive: bool = False,
         tier: str = "bulk") -> RestorePlan:
    """Check everything and choose the backup (from the tree, or with ``from_archive``
    from the archive). Raise CyaError (exit 2 for bad input, 1 when nothing is
    restorable at that date)."""
    asked = parse_date(date_text, now, local)
    tree = Tree(settings.tree)
    tree.require()
    if target.exists() and not target.is_dir():
        raise UsageError(f"target {target} exists and is not a directory", "choose another")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UsageError(f"target {target} is not empty",
                         "choose an empty or new directory, or add --force to replace it")
    with Catalog(tree.catalog_path) as catalog:
        known = [r.time for r in catalog.backups()]
        archived = catalog.archived_year_paths()
        archived_backup = None
        if from_archive:
            if not archived:
                raise CyaError("the archive holds no year yet",
                               "restore from the tree without --from-archive")
            from cya.archive.retrieve import archived_view, plan_fetch

            view = archived_view(catalog)
            backup = _choose(view, asked, "the archive")
            fetch = plan_fetch(catalog, backup, tier)
            to_read = fetch.fetch_bytes
        else:
            view = tree.scan()
            fetch = None
            if archived:
                from cya.archive.retrieve import archived_view

                archived_backup = choose(archived_view(catalog), asked)
            backup = _choose(view, asked, "the tree", archived_backup)
            to_read = bytes_to_read(view, backup)
    between = any(format_time(backup.time) < t <= format_time(asked) for t in known)
    closer = (archived_backup.time if archived_backup is not None
              and archived_backup.time > backup.time else None)
    relative = path.strip("/") if path else None
    return RestorePlan(asked, backup, to_read, target, relative or None, between,
                       fetch, tier, closer)


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


def run(settings: Settings, the_plan: RestorePlan, wait: bool = False,
        say: Callable[[str], None] = lambda text: None) -> None:
    """Restore per ``the_plan``; raise CyaError if duplicity fails (the target untouched),
    ThawPending while archived bags are still thawing."""
    passphrase = read_passphrase(settings)
    tree = Tree(settings.tree)
    target = the_plan.target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.cya-restore-{secrets.token_hex(4)}"
    fetched = tree.staging / f"fetch-{secrets.token_hex(4)}"
    source = tree.files_dir(the_plan.backup.level)
    staging.mkdir(mode=0o700)
    try:
        with TreeLock(tree.lock_path, shared=True), private_tempdir() as work:
            if the_plan.fetch is not None:
                from cya.archive.retrieve import fetch, thaw
                from cya.archive.s3 import Remote

                remote = Remote(settings.archive)
                with Catalog(tree.catalog_path) as catalog:
                    thaw(remote, catalog, the_plan.fetch, the_plan.tier, wait, say)
                fetched.mkdir(mode=0o700)
                received = fetch(remote, the_plan.fetch, fetched)
                say(f"fetched {received} bytes from {len(the_plan.fetch.bags)} bag(s), "
                    f"every SHA-256 verified")
                source = fetched / the_plan.backup.level.relpath / "files"
            restored = staging / "restored"
            out = restored / Path(the_plan.path).name if the_plan.path else restored
            if the_plan.path:
                restored.mkdir()
            log_file = work / "duplicity.log"
            argv = duplicity.reading_argv(
                "restore", settings=settings, source=source,
                time=the_plan.backup.time, work=work, log_file=log_file,
                extra=[*(["--path-to-restore", the_plan.path] if the_plan.path else []),
                       str(out)])
            done = execute.run(argv, env=duplicity.environment(passphrase),
                               secrets=[passphrase or ""])
            records = duplicity.parse_log(log_file.read_text(errors="replace")) \
                if log_file.exists() else []
            if done.returncode != 0:
                if done.returncode == duplicity.RESTORE_PATH_NOT_FOUND:
                    raise CyaError(f"/{the_plan.path} is not in the backup of "
                                   f"{show_time(the_plan.backup.time)}",
                                   "check the path with: cya ls --date D PATH")
                raise duplicity.failure(done.returncode, records, done.tail, settings)
        _put_in_place(restored, target)
    finally:
        remove_tree(staging)
        remove_tree(fetched)


def _put_in_place(restored: Path, target: Path) -> None:
    """Rename the finished restore to ``target``; an existing target (``--force``) is
    moved aside first and removed only once the new one is in place."""
    old = None
    if target.exists():
        if any(target.iterdir()):
            old = target.parent / f".{target.name}.cya-replaced-{secrets.token_hex(4)}"
            os.rename(target, old)
        else:
            target.rmdir()
    os.rename(restored, target)
    fsync_dir(target.parent)
    if old is not None:
        remove_tree(old)
