"""``cya archive``: bag and upload every finished year not yet archived (DESIGN.md 4).

Order of writes, so every intermediate state is valid (STYLE.md):

1. plan (pure: core.bagging) from the tree's names and sizes and the catalog's
   archived names; ``--dry-run`` stops here;
2. per bag: stream the tar into a multipart upload; S3 confirms it and cya checks
   it by HEAD -> crash point after-bag-upload; then its manifest (Standard)
   -> crash point after-bag-manifest; then the catalog rows (bag + blobs);
3. per year, once all its bags are recorded: the year index (``years/NAME.json``,
   every path of the year -> blob, bag, offset, SHA-256) -> crash point
   after-year-index; then the catalog rows (year + files);
4. ``system/``: a copy of the catalog (without the file index) and the config.

A rerun after a crash anywhere repeats nothing that was recorded: a bag whose
manifest is in the bucket with the same member digest is adopted after a HEAD,
any other half-sent upload of its key is aborted and the bag sent again.
Nothing already archived is ever rewritten.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cya.archive import layout
from cya.archive.bags import write_bag
from cya.archive.s3 import Remote, StreamingUpload
from cya.catalog import SYSTEM_COPIED, BagRecord, BlobRecord, Catalog, YearRecord
from cya.clock import wall_time
from cya.config import Settings
from cya.core.bagging import BagPlan, BagSpec, NameConflict, YearFile, part_size, plan_bags
from cya.core.names import parse_name
from cya.core.retention import awaiting_archive
from cya.core.timescale import Level
from cya.core.treeview import TreeView
from cya.errors import ArchiveError, TreeError, UsageError
from cya.fsutil import crash_point, remove_tree
from cya.opentree import OpenTree, open_tree
from cya.tree import FILES, Tree

log = logging.getLogger("cya")

FORMAT = 1  # of manifests and year indexes


@dataclass
class ArchiveResult:
    plans: list[BagPlan]
    dry_run: bool
    uploaded: list[str] = field(default_factory=list)  # bag keys sent in this run
    adopted: list[str] = field(default_factory=list)  # bag keys found already sent
    years: list[str] = field(default_factory=list)  # years recorded in this run
    system_copied: bool = False

    def as_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "years": [{"year": p.year, "bags": len(p.bags), "upload_bytes": p.upload_bytes,
                       "reused_bytes": p.reused_bytes, "files": p.files} for p in self.plans],
            "uploaded": self.uploaded, "adopted": self.adopted,
            "recorded_years": self.years, "system_copied": self.system_copied,
        }


def require_bucket(settings: Settings) -> None:
    if not settings.archive.enabled:
        raise UsageError("archiving is off: archive.bucket is empty in "
                         f"{settings.config_path}",
                         "set [archive] bucket = \"...\" (and run: cya archive setup)")


def run(settings: Settings, now: datetime, dry_run: bool = False,
        progress: Callable[[str], None] | None = None) -> ArchiveResult:
    """Archive every finished year not yet archived (a dry run only plans: no lock, no
    network, nothing written)."""
    require_bucket(settings)
    with open_tree(settings, write=not dry_run, locked=not dry_run) as opened:
        return archive_opened(opened, dry_run, progress)


def year_files(view: TreeView, year: Level) -> list[YearFile]:
    """Every duplicity file in the year level and the levels below it."""
    files = []
    for level in view.levels():
        if level == year or year.is_ancestor_of(level):
            for name, info in sorted(view.info.get(level, {}).items()):
                parsed = parse_name(name)
                if parsed is not None and not parsed.partial:
                    files.append(YearFile(f"{level.relpath}/{FILES}/{name}", info.size))
    return files


def plan(view: TreeView, catalog: Catalog, bag_size: int) -> list[BagPlan]:
    """The bag plan of every year awaiting the archive, oldest first (a later year
    reuses what an earlier one stores)."""
    archived = catalog.archived_sizes()
    plans = []
    for year in awaiting_archive(view, catalog.archived_year_paths()):
        try:
            year_plan = plan_bags(year.relpath, year_files(view, year), archived, bag_size)
        except NameConflict as error:
            raise TreeError(f"cannot archive {year}: {error}",
                            "the tree or its catalog is damaged; run: cya archive verify") from None
        plans.append(year_plan)
        archived = {**archived, **{b.name: b.size for bag in year_plan.bags for b in bag.blobs}}
    return plans


def archive_opened(opened: OpenTree, dry_run: bool,
                   progress: Callable[[str], None] | None = None) -> ArchiveResult:
    """Plan and (unless ``dry_run``) upload, on a tree opened for writing."""
    tree, catalog, settings = opened.tree, opened.catalog, opened.settings
    say = progress or (lambda text: None)
    plans = plan(opened.view, catalog, settings.archive.bag_size)
    result = ArchiveResult(plans, dry_run)
    if dry_run:
        return result
    remote = Remote(settings.archive)
    remote.check_bucket()
    for year_plan in plans:
        year = Level(tuple(year_plan.year.split("/")))
        for number, bag in enumerate(year_plan.bags, 1):
            say(f"{year}: bag {number} of {len(year_plan.bags)}, "
                f"{len(bag.blobs)} file(s), {bag.data_bytes} bytes")
            key, adopted = _store_bag(tree, catalog, remote, year, bag)
            (result.adopted if adopted else result.uploaded).append(key)
        _record_year(catalog, remote, year, year_plan)
        result.years.append(year_plan.year)
    if result.years or result.uploaded or not _system_copied(catalog):
        copy_system(tree, catalog, remote, settings)
        result.system_copied = True
    return result


def bag_keys(remote: Remote, year: Level, bag: BagSpec) -> tuple[str, str]:
    relative = layout.bag(year.name, bag.digest)
    return remote.key(relative), remote.key(layout.manifest_of(relative))


def _store_bag(tree: Tree, catalog: Catalog, remote: Remote, year: Level,
               bag: BagSpec) -> tuple[str, bool]:
    """Upload one bag (or adopt it, if a crashed run sent it) and record it.
    Return its key and whether it was adopted."""
    key, manifest_key = bag_keys(remote, year, bag)
    manifest = _adoptable(remote, key, manifest_key, bag)
    adopted = manifest is not None
    if manifest is None:
        aborted = remote.abort_stale_uploads(key)
        if aborted:
            log.info("aborted %d upload(s) of %s left by an interrupted run", aborted, key)
        upload = StreamingUpload(remote, key, part_size(bag.estimated_bytes),
                                 {"cya-digest": bag.digest, "cya-tree": catalog.tree_id})
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
        manifest = {
            "format": FORMAT, "bag": key, "year": year.relpath, "digest": bag.digest,
            "size": sent.size, "parts": sent.parts, "checksum": sent.checksum,
            "storage_class": remote.storage_class, "uploaded_at": wall_time(),
            "members": [m.as_json() for m in members],
        }
        remote.put_json(manifest_key, manifest)
        crash_point("after-bag-manifest")
    names = {b.paths[0]: b.name for b in bag.blobs}
    catalog.record_bag(
        BagRecord(key, year.relpath, bag.digest, manifest["size"], manifest["parts"],
                  manifest["checksum"], manifest["storage_class"], manifest_key,
                  manifest["uploaded_at"]),
        [BlobRecord(names[m["path"]], m["sha256"], m["size"], key, m["offset"], m["path"])
         for m in manifest["members"]])
    return key, adopted


def _adoptable(remote: Remote, key: str, manifest_key: str, bag: BagSpec) -> dict | None:
    """The manifest of this very bag if an earlier run sent bag and manifest, else None."""
    manifest = remote.get_json(manifest_key)
    if not isinstance(manifest, dict) or manifest.get("digest") != bag.digest:
        return None
    head = remote.head(key)
    if head is None or head["ContentLength"] != manifest.get("size"):
        return None
    return manifest


def _record_year(catalog: Catalog, remote: Remote, year: Level, year_plan: BagPlan) -> None:
    """Write the year index to the bucket, then record the year in the catalog."""
    where = catalog.blobs()
    files: dict[str, str] = {}
    for bag in year_plan.bags:
        for blob in bag.blobs:
            for path in blob.paths:
                files[path] = blob.name
    for item in year_plan.reused:
        files[item.path] = item.name
    missing = sorted(n for n in files.values() if n not in where)
    if missing:
        raise ArchiveError(f"{year}: {len(missing)} file(s) are in no recorded bag "
                           f"({missing[0]} …)", "run: cya archive again")
    index_key = remote.key(layout.year_index(year.name))
    remote.put_json(index_key, {
        "format": FORMAT, "year": year.relpath,
        "files": {path: {"name": name, "sha256": where[name].sha256, "size": where[name].size,
                         "bag": where[name].bag, "offset": where[name].offset,
                         "member": where[name].path}
                  for path, name in sorted(files.items())},
    })
    crash_point("after-year-index")
    catalog.record_year(YearRecord(year.relpath, index_key, len(files), year_plan.upload_bytes,
                                   wall_time()), files)


def _system_copied(catalog: Catalog) -> bool:
    return catalog.get_meta(SYSTEM_COPIED) is not None


def copy_system(tree: Tree, catalog: Catalog, remote: Remote, settings: Settings) -> None:
    """Copy the catalog (without the file index) and the config to ``system/``:
    with the bucket and the passphrase, ``cya recover`` rebuilds a machine."""
    work = tree.staging / f"system-{secrets.token_hex(4)}"
    work.mkdir(mode=0o700)
    try:
        copy = work / "catalog.sqlite"
        catalog.copy_without_index(copy)
        remote.put_bytes(remote.key(layout.SYSTEM_CATALOG), copy.read_bytes(),
                         "application/vnd.sqlite3")
        remote.put_bytes(remote.key(layout.SYSTEM_CONFIG_KEY), settings.config_path.read_bytes(),
                         "application/toml")
    finally:
        remove_tree(work)
    catalog.set_meta(SYSTEM_COPIED, wall_time())
