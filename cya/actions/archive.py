"""``cya archive``: put what the tree holds off-site, as ``archive.cadence`` says
(DESIGN.md 4) — by default every backup's new duplicity files, the same run.

One run:

1. list the bucket once: a bag the catalog records but the bucket no longer holds (with
   its size and class) is forgotten, so files the tree still holds are sent again and
   files it does not are reported as lost (``status`` says which backups that costs);
   multipart uploads a dead run left under the prefix are aborted;
2. plan (pure: core.retention.eligible, core.bagging): the files of the levels the
   cadence says are due, minus what the bucket holds and what the retention pruned
   (a pruned point is never sent again); ``--dry-run`` stops here (no network);
3. per bag: stream the tar into a multipart upload; S3 confirms it and cya checks it
   by HEAD -> crash point after-bag-upload; its manifest (Standard)
   -> after-bag-manifest; then the catalog rows;
4. a kept backup or year whose record the bucket lost, or whose record names a bag the
   bucket lost (its files went up again in a newer bag: the listing shows the bag newer
   than the record), gets its record written again from the catalog once the bucket
   holds every file it needs; a lost file index is sent again when the catalog has it;
5. per backup the archive can now restore alone: its file index, encrypted
   (``indexes/TIME.gpg``), then its record (``backups/TIME.json``: the whole chain, each
   file's bag, offset, size, SHA-256) -> after-backup-record; then the catalog rows;
6. per finished year without a record: ``years/YEAR.json`` (the year as the tree holds
   it now) -> after-year-index; then the catalog rows;
7. ``system/``: the catalog (without the file index and sources), the config encrypted,
   and how the tree is encrypted (again whenever the bucket lacks one of them);
8. with ``archive.prune``, the remote retention (``cya archive prune --yes``).

A rerun after a crash anywhere repeats nothing that was recorded: a bag whose manifest
is in the bucket with the same member digest is adopted after a HEAD, any other
half-sent upload is aborted and sent again. Nothing archived is ever rewritten, except a
record that names a bag the bucket lost (step 4): it was no longer true.

The trim asks ``Guard`` which files the bucket was seen to hold this run, and confirms
by HEAD (size, class, checksum) the bags of the files it is about to let go of.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cya.archive import layout
from cya.archive.bags import write_bag
from cya.archive.records import BackupPoint, BagManifest, Stored, YearPoint
from cya.archive.s3 import Remote, StreamingUpload
from cya.catalog import (
    ARCHIVE_DAMAGE,
    SYSTEM_COPIED,
    BagRecord,
    BlobRecord,
    Catalog,
    PointRecord,
    YearRecord,
)
from cya.clock import wall_time
from cya.config import Settings, read_passphrase
from cya.core import units
from cya.core.bagging import BagPlan, BagSpec, NameConflict, YearFile, part_size, plan_bags
from cya.core.chains import restorable
from cya.core.names import backup_sets, format_time, parse_name
from cya.core.retention import awaiting_archive, eligible
from cya.core.timescale import Level
from cya.core.treeview import TreeView
from cya.errors import ArchiveError, TreeError, UsageError
from cya.fsutil import crash_point, remove_tree, require_space
from cya.gpg import Gpg
from cya.opentree import OpenTree, open_tree
from cya.tree import FILES, Tree

log = logging.getLogger("cya")
CONFIG_COPIED = "config_copied_sha256"  # meta: the config the bucket's encrypted copy holds


@dataclass
class ArchiveResult:
    plan: BagPlan
    dry_run: bool
    uploaded: list[str] = field(default_factory=list)  # bag keys sent in this run
    adopted: list[str] = field(default_factory=list)  # bag keys found already sent
    points: list[str] = field(default_factory=list)  # backups recorded in this run
    years: list[str] = field(default_factory=list)  # years recorded in this run
    renewed: list[str] = field(default_factory=list)  # keys of records written again
    lost: list[str] = field(default_factory=list)  # bags the bucket lost
    lost_backups: list[str] = field(default_factory=list)  # archived backups they cost
    system_copied: bool = False
    safe: frozenset[str] = frozenset()  # files the bucket was seen to hold this run
    prune: object | None = None  # archive_admin.PruneResult, with archive.prune

    def as_json(self) -> dict:
        plan = self.plan
        return {
            "version": 1, "dry_run": self.dry_run, "bags": len(plan.bags),
            "upload_bytes": plan.upload_bytes, "reused_bytes": plan.reused_bytes,
            "files": plan.files, "uploaded": self.uploaded, "adopted": self.adopted,
            "recorded_backups": self.points, "recorded_years": self.years,
            "renewed_records": self.renewed,
            "lost_bags": self.lost, "lost_backups": self.lost_backups,
            "system_copied": self.system_copied,
        }


def require_bucket(settings: Settings) -> None:
    if not settings.archive.enabled:
        raise UsageError("archiving is off: archive.bucket is empty in "
                         f"{settings.config_path}",
                         "set [archive] bucket = \"...\" (and run: cya archive setup)")


def run(settings: Settings, now: datetime, dry_run: bool = False,
        progress: Callable[[str], None] | None = None,
        live: Callable[[str], None] | None = None) -> ArchiveResult:
    """Archive what is due (a dry run only plans: no lock, no network, nothing written)."""
    require_bucket(settings)
    with open_tree(settings, write=not dry_run, locked=not dry_run) as opened:
        return archive_opened(opened, now, dry_run, progress, live)


def due_files(view: TreeView, cadence: str) -> list[YearFile]:
    """Every duplicity file of the levels due under ``cadence``, with its size."""
    files = []
    for level in eligible(view, cadence):
        for name, info in sorted(view.info.get(level, {}).items()):
            parsed = parse_name(name)
            if parsed is not None and not parsed.partial and info.size > 0:
                files.append(YearFile(f"{level.relpath}/{FILES}/{name}", info.size))
    return files


def group_of(view: TreeView) -> str:
    """The year a run's bags are filed under: the newest backup's."""
    newest = view.newest()
    return f"{newest.year:04d}" if newest else "0000"


def plan(view: TreeView, catalog: Catalog, settings: Settings) -> BagPlan:
    """The bags that take what is due off-site (files already archived are reused; files
    the retention pruned are never sent again)."""
    archived = {**catalog.pruned_sizes(), **catalog.archived_sizes()}
    try:
        return plan_bags(group_of(view), due_files(view, settings.archive.cadence), archived,
                         settings.archive.bag_size)
    except NameConflict as error:
        raise TreeError(f"cannot archive: {error}",
                        "the tree or its catalog is damaged; run: cya check") from None


def archive_opened(opened: OpenTree, now: datetime, dry_run: bool,
                   progress: Callable[[str], None] | None = None,
                   live: Callable[[str], None] | None = None) -> ArchiveResult:
    """Plan and (unless ``dry_run``) upload, record and prune, on an opened tree."""
    tree, catalog, settings = opened.tree, opened.catalog, opened.settings
    say = progress or (lambda text: None)
    if dry_run:
        require_space(tree.root, "recording what the archive run sends")
        return ArchiveResult(plan(opened.view, catalog, settings), True)
    remote = Remote(settings.archive)
    remote.check_bucket()
    started = datetime.now(UTC)
    listing = remote.list_keys(remote.prefix)
    result = ArchiveResult(BagPlan("", (), ()), False)
    result.lost = _forget_lost(catalog, remote, listing)
    aborted = remote.abort_uploads_before(remote.prefix, started)
    if aborted:
        log.info("aborted %d upload(s) an interrupted run left", aborted)
    result.plan = the_plan = plan(opened.view, catalog, settings)
    for number, bag in enumerate(the_plan.bags, 1):
        say(f"bag {number} of {len(the_plan.bags)}: {len(bag.blobs)} file(s), "
            f"{units.size(bag.data_bytes)}")
        key, adopted = _store_bag(tree, catalog, remote, the_plan.year, bag,
                                  _upload_line(live, number, len(the_plan.bags), bag))
        (result.adopted if adopted else result.uploaded).append(key)
    present = {b.key for b in catalog.bags()
               if b.key in listing or b.key in result.uploaded or b.key in result.adopted}
    result.safe = frozenset(name for name, blob in catalog.blobs().items()
                            if blob.bag in present)
    with Gpg(settings, read_passphrase(settings)) as gpg:
        result.renewed = _renew_records(catalog, remote, gpg, listing, result.safe)
        result.points = _record_points(opened, remote, gpg, result.safe)
        result.years = _record_years(opened, remote, result.safe)
        result.lost_backups = _damage(catalog)
        missing = any(remote.key(k) not in listing for k in (
            layout.SYSTEM_CATALOG, layout.SYSTEM_CONFIG_KEY, layout.SYSTEM_SETUP))
        if result.uploaded or result.points or result.years or result.lost \
                or result.renewed or missing:
            copy_system(tree, catalog, remote, settings, gpg, force_config=missing)
            result.system_copied = True
    if settings.archive.prune:
        from cya.actions.archive_admin import prune_opened

        result.prune = prune_opened(opened, now, apply=True, remote=remote)
    return result


def _forget_lost(catalog: Catalog, remote: Remote, listing: dict[str, dict]) -> list[str]:
    """Bags the catalog records that the bucket no longer holds as recorded: forget them
    (what the tree still holds goes up again). Return their keys."""
    lost = []
    for bag in catalog.bags():
        item = listing.get(bag.key)
        if item is None or item["Size"] != bag.size or \
                item.get("StorageClass", "STANDARD") != bag.storage_class:
            lost.append(bag.key)
    if lost:
        log.warning("the bucket no longer holds %d recorded bag(s): %s", len(lost),
                    ", ".join(remote.relative(k) for k in lost))
        catalog.forget_bags(lost)
    return lost


def _damage(catalog: Catalog) -> list[str]:
    """Archived backups (and years) the bucket can no longer restore, recorded in the
    catalog for ``status``; return them."""
    stored = set(catalog.archived_sizes())
    lost = [p.time for p in catalog.points() if not set(p.names) <= stored]
    lost += [f"year {y.year}" for y in catalog.archived_years()
             if not set(catalog.year_files(y.year).values()) <= stored]
    catalog.set_meta(ARCHIVE_DAMAGE, json.dumps(lost) if lost else None)
    return lost


def bag_keys(remote: Remote, group: str, bag: BagSpec) -> tuple[str, str]:
    relative = layout.bag(group, bag.digest)
    return remote.key(relative), remote.key(layout.manifest_of(relative))


def _upload_line(live: Callable[[str], None] | None, number: int, bags: int, bag: BagSpec
                 ) -> Callable[[int], None] | None:
    """What a bag's upload says on a terminal: bytes, rate and time left."""
    if live is None:
        return None
    started = time.monotonic()
    total = bag.estimated_bytes

    def line(sent: int) -> None:
        seconds = time.monotonic() - started
        left = (total - sent) * seconds / sent if sent and seconds else 0
        live(f"uploading bag {number} of {bags}: {units.size(sent)} of {units.size(total)}, "
             f"{units.rate(sent, seconds)}, about {left:.0f} s left")
    return line


def _store_bag(tree: Tree, catalog: Catalog, remote: Remote, group: str,
               bag: BagSpec, on_progress: Callable[[int], None] | None = None
               ) -> tuple[str, bool]:
    """Upload one bag (or adopt it, if a crashed run sent it) and record it.
    Return its key and whether it was adopted."""
    key, manifest_key = bag_keys(remote, group, bag)
    manifest = _adoptable(remote, key, manifest_key, bag)
    adopted = manifest is not None
    if manifest is None:
        upload = StreamingUpload(remote, key, part_size(bag.estimated_bytes),
                                 {"cya-digest": bag.digest, "cya-tree": catalog.tree_id},
                                 on_progress)
        try:
            members = write_bag(bag, tree.root, upload)
        except OSError as error:
            upload.abort()
            raise ArchiveError(f"cannot read {error.filename or ''} for {key}: "
                               f"{error.strerror or error}",
                               "check the tree; nothing was recorded") from None
        except BaseException:
            upload.abort()
            raise
        sent = upload.close()
        crash_point("after-bag-upload")
        manifest = BagManifest(key, group, bag.digest, sent.size, sent.parts, sent.checksum,
                               remote.storage_class, wall_time(), tuple(members))
        remote.put_json(manifest_key, manifest.as_json())
        crash_point("after-bag-manifest")
    names = {b.paths[0]: b.name for b in bag.blobs}
    catalog.record_bag(
        BagRecord(key, group, bag.digest, manifest.size, manifest.parts, manifest.checksum,
                  manifest.storage_class, manifest_key, manifest.uploaded_at),
        [BlobRecord(names[m.path], m.sha256, m.size, key, m.offset, m.path)
         for m in manifest.members])
    return key, adopted


def _adoptable(remote: Remote, key: str, manifest_key: str, bag: BagSpec
               ) -> BagManifest | None:
    """The manifest of this very bag if an earlier run sent bag and manifest, else None."""
    try:
        data = remote.get_json(manifest_key)
        manifest = BagManifest.parse(data, manifest_key) if data is not None else None
    except ArchiveError:
        return None  # a damaged manifest: send the bag again
    if manifest is None or manifest.digest != bag.digest:
        return None
    head = remote.head(key)
    if head is None or head["ContentLength"] != manifest.size:
        return None
    return manifest


def _renew_records(catalog: Catalog, remote: Remote, gpg: Gpg, listing: dict[str, dict],
                   safe: frozenset[str]) -> list[str]:
    """Write again, from the catalog, the record of every kept backup and year that the
    bucket lost or that names a bag the bucket lost since (its files went up again in a
    bag newer than the record), once the bucket holds every file it needs (``safe``), and
    the encrypted file index of a kept backup the bucket lost, when the catalog has it.
    Return the keys written."""
    blobs = catalog.blobs()

    def stale(record_key: str, names: Collection[str]) -> bool:
        record = listing.get(record_key)
        if record is None:
            return True
        for name in names:
            bag = listing.get(blobs[name].bag)  # None: sent in this run, after the listing
            if bag is None or bag["LastModified"] > record["LastModified"]:
                return True
        return False

    links = catalog.index_links()
    renewed = []
    for point in catalog.points():
        if not set(point.names) <= safe:
            continue
        if point.index_key and point.index_key not in listing and point.time in links:
            remote.put_bytes(point.index_key, gpg.encrypt(catalog.index_delta(point.time)),
                             "application/octet-stream")
            renewed.append(point.index_key)
        if stale(point.record_key, point.names):
            chain = [name for s in backup_sets(point.names) for name in s.files]
            record = BackupPoint(point.time, point.level,
                                 tuple(_stored(blobs[name]) for name in chain),
                                 point.index_key, point.archived_at)
            remote.put_json(point.record_key, record.as_json())
            renewed.append(point.record_key)
    for year in catalog.archived_years():
        files = catalog.year_files(year.year)
        if set(files.values()) <= safe and stale(year.index_key, files.values()):
            record = YearPoint(year.year, {path: _stored(blobs[name])
                                           for path, name in files.items()}, year.archived_at)
            remote.put_json(year.index_key, record.as_json())
            renewed.append(year.index_key)
    if renewed:
        log.info("wrote again %d record(s) the bucket had lost or that named a lost bag",
                 len(renewed))
    return renewed


def _stored(blob: BlobRecord) -> Stored:
    return Stored(blob.name, blob.sha256, blob.size, blob.bag, blob.offset, blob.path)


def archived_part(view: TreeView, names: Collection[str]) -> TreeView:
    """The tree as far as its files are among ``names``: what the bucket can restore."""
    names = set(names)
    files = {level: frozenset(n for n in found if n in names)
             for level, found in view.files.items()}
    info = {level: {n: i for n, i in view.info.get(level, {}).items() if n in names}
            for level in view.files}
    return TreeView(files, info)


def _record_points(opened: OpenTree, remote: Remote, gpg: Gpg, safe: frozenset[str]
                   ) -> list[str]:
    """Write a record (and the encrypted file index) for every backup of the tree the
    bucket can now restore alone and that has none; return their times."""
    catalog = opened.catalog
    known = {p.time for p in catalog.points(state=None)}
    blobs = catalog.blobs()
    links = catalog.index_links()
    recorded = []
    for backup in restorable(archived_part(opened.view, safe)):
        time = format_time(backup.time)
        if time in known:
            continue
        index_key = None
        if time in links:
            index_key = remote.key(layout.backup_index(time))
            remote.put_bytes(index_key, gpg.encrypt(catalog.index_delta(time)),
                             "application/octet-stream")
        names = [name for s in backup.chain for name in s.files]
        point = BackupPoint(time, backup.level.relpath,
                            tuple(_stored(blobs[name]) for name in names), index_key,
                            wall_time())
        record_key = remote.key(layout.backup_record(time))
        remote.put_json(record_key, point.as_json())
        crash_point("after-backup-record")
        catalog.record_point(PointRecord(time, point.level, record_key, index_key,
                                         point.archived_at, "kept", tuple(sorted(names))))
        recorded.append(time)
    return recorded


def _record_years(opened: OpenTree, remote: Remote, safe: frozenset[str]) -> list[str]:
    """Write the record of every finished year that has none (kept or pruned): the year
    as the tree holds it now, as far as the bucket holds its files."""
    catalog = opened.catalog
    view = opened.view
    recorded = []
    blobs = catalog.blobs()
    for year in awaiting_archive(view, catalog.archived_year_paths()):
        files = {f.path: f.name for f in _year_files(view, year) if f.name in safe}
        if not files:
            continue
        point = YearPoint(year.relpath, {path: _stored(blobs[name])
                                         for path, name in files.items()}, wall_time())
        index_key = remote.key(layout.year_index(year.name))
        remote.put_json(index_key, point.as_json())
        crash_point("after-year-index")
        catalog.record_year(YearRecord(year.relpath, index_key, len(files),
                                       sum(blobs[n].size for n in set(files.values())),
                                       point.archived_at), files)
        recorded.append(year.relpath)
    return recorded


def _year_files(view: TreeView, year: Level) -> list[YearFile]:
    """Every duplicity file in the year level and the levels below it."""
    return [f for f in due_files(view, "backup")
            if (level := Level(tuple(f.path.rsplit(f"/{FILES}/", 1)[0].split("/")))) == year
            or year.is_ancestor_of(level)]


def copy_system(tree: Tree, catalog: Catalog, remote: Remote, settings: Settings,
                gpg: Gpg | None = None, force_config: bool = False) -> None:
    """Copy what ``cya recover`` needs to ``system/``: the catalog without the file index
    and sources, the config encrypted (it names the sources), and how the tree is
    encrypted (mode and key id: no secret)."""
    work = tree.staging / f"system-{secrets.token_hex(4)}"
    work.mkdir(mode=0o700)
    try:
        copy = work / "catalog.sqlite"
        catalog.copy_without_index(copy)
        remote.put_bytes(remote.key(layout.SYSTEM_CATALOG), copy.read_bytes(),
                         "application/vnd.sqlite3")
        config = settings.config_path.read_bytes()
        digest = hashlib.sha256(config).hexdigest()
        if force_config or catalog.get_meta(CONFIG_COPIED) != digest:  # changed or lost
            if gpg is None:
                with Gpg(settings, read_passphrase(settings)) as own:
                    sealed = own.encrypt(config)
            else:
                sealed = gpg.encrypt(config)
            remote.put_bytes(remote.key(layout.SYSTEM_CONFIG_KEY), sealed,
                             "application/octet-stream")
            catalog.set_meta(CONFIG_COPIED, digest)
        remote.put_json(remote.key(layout.SYSTEM_SETUP), {
            "format": 1, "encryption": settings.encryption.mode,
            "gpg_key": settings.encryption.gpg_key, "tree_id": catalog.tree_id})
        if remote.head(remote.key(layout.SYSTEM_CONFIG_PLAIN)) is not None:
            remote.delete(remote.key(layout.SYSTEM_CONFIG_PLAIN))  # an older, plain copy
    finally:
        remove_tree(work)
    catalog.set_meta(SYSTEM_COPIED, wall_time())


class Guard:
    """What the trim may let go of, as far as the bucket is concerned: files the bucket
    was seen to hold this run, confirmed by HEAD (size, class, checksum) before a level
    holding the last copy of one in the tree is deleted."""

    def __init__(self, opened: OpenTree, safe: Collection[str] | None):
        self.opened = opened
        self.safe = set(safe) if safe is not None else None
        self.problems: list[str] = []

    @classmethod
    def listing(cls, opened: OpenTree) -> Guard:
        """A guard from one listing of the bucket (``cya trim`` on its own); with the
        bucket out of reach, nothing due is let go."""
        try:
            remote = Remote(opened.settings.archive)
            listing = remote.list_keys(remote.prefix)
        except ArchiveError as error:
            guard = cls(opened, ())
            guard.problems.append(f"the bucket could not be checked ({error.message}), so "
                                  "nothing the archive should hold was trimmed")
            return guard
        present = {b.key for b in opened.catalog.bags() if b.key in listing
                   and listing[b.key]["Size"] == b.size}
        return cls(opened, {n for n, b in opened.catalog.blobs().items() if b.bag in present})

    def confirm(self, names: Collection[str]) -> set[str]:
        """The names among ``names`` whose bags a HEAD shows as recorded; the others are
        no longer safe."""
        if not names:
            return set()
        catalog = self.opened.catalog
        blobs = catalog.blobs()
        bags = {b.key: b for b in catalog.bags()}
        remote = Remote(self.opened.settings.archive)
        good = set()
        for key in sorted({blobs[n].bag for n in names if n in blobs}):
            head = remote.head(key)
            bag = bags[key]
            ok = head is not None and head["ContentLength"] == bag.size and \
                head.get("StorageClass", "STANDARD") == bag.storage_class and \
                (head.get("ChecksumSHA256") or bag.checksum).split("-")[0] == \
                bag.checksum.split("-")[0]
            if ok:
                good |= {n for n in names if n in blobs and blobs[n].bag == key}
            else:
                self.problems.append(f"bag {remote.relative(key)} is not as recorded in the "
                                     "bucket, so the levels it holds were kept")
        confirmed = set(names) & good
        if self.safe is not None:
            self.safe -= set(names) - confirmed
        return confirmed
