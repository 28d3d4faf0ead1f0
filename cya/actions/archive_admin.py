"""``cya archive status | verify | setup | prune``: what the archive holds, whether the
bucket still holds it, preparing a bucket, and the remote retention.

``status`` reads only the catalog and the tree (no network: it is what monitoring
polls). ``verify`` HEADs every bag (size, storage class, checksum) and reads every
manifest and record it checks (they must parse and agree with the catalog), lists
uploads in progress and objects the catalog does not know. ``setup`` checks the bucket
can be reached and written, blocks public access, adds a lifecycle rule that aborts
multipart uploads a dead run left behind, and reports versioning and object lock.

``prune`` keeps, remotely, every backup the tree keeps now and every finished year as
it stood when it finished (within ``keep_years``): an object leaves the bucket only
when no kept point needs it **and** it is ``min_age_days`` old (core.retention). The
catalog's deletion queue is written first (one transaction, the dropped points marked
pruned: never archived again), then each object is deleted and its queue row removed:
a crash between leaves a queue entry the next prune finishes, never an object nobody
remembers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from cya.actions.archive import copy_system, require_bucket
from cya.archive import layout
from cya.archive.records import BackupPoint, BagManifest, RecordError, YearPoint
from cya.archive.s3 import ARCHIVE_CLASSES, Remote
from cya.catalog import ARCHIVE_DAMAGE, SYSTEM_COPIED, YearRecord
from cya.clock import iso, iso_record, parse_record_time, record_time
from cya.config import Settings
from cya.core.chains import restorable
from cya.core.costs import Prices, early_deletion, storage_month
from cya.core.names import format_time, parse_time
from cya.core.retention import Point, PrunePlan, RemoteObject, keep_points, plan_prune
from cya.errors import ArchiveError
from cya.opentree import OpenTree, open_tree
from cya.tree import level_of

LIFECYCLE_RULE = "cya-abort-incomplete-uploads"


@dataclass(frozen=True)
class ArchiveStatus:
    bucket: str
    cadence: str
    years: list[YearRecord]
    backups: int  # archived backups kept
    newest: str | None  # the newest archived backup
    bags: int
    bytes: int
    dollars_month: float
    damaged: list[str]  # archived backups (or years) the bucket can no longer restore
    thaws: dict[str, str]
    system_copied_at: str | None

    def as_json(self) -> dict:
        return {"version": 1, **asdict(self),
                "newest": iso(parse_time(self.newest)) if self.newest else None,
                "system_copied_at": iso_record(self.system_copied_at),
                "years": [{**asdict(y), "archived_at": iso_record(y.archived_at)}
                          for y in self.years]}


def status(settings: Settings) -> ArchiveStatus:
    require_bucket(settings)
    with open_tree(settings, write=False, locked=False) as opened:
        catalog = opened.catalog
        bags = catalog.bags()
        size = sum(b.size for b in bags)
        points = catalog.points()
        thaws = {bag: f"{tier}, asked {asked}, kept {days} days"
                 for bag, (tier, days, asked) in catalog.thaws().items()}
        return ArchiveStatus(
            bucket=settings.archive.bucket, cadence=settings.archive.cadence,
            years=catalog.archived_years(), backups=len(points),
            newest=points[-1].time if points else None, bags=len(bags),
            bytes=size, dollars_month=storage_month(Prices(), size, len(bags)),
            damaged=json.loads(catalog.get_meta(ARCHIVE_DAMAGE) or "[]"),
            thaws=thaws, system_copied_at=catalog.get_meta(SYSTEM_COPIED))


@dataclass
class VerifyReport:
    bucket: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"version": 1, **asdict(self)}


def verify(settings: Settings) -> VerifyReport:
    """Check every recorded object is in the bucket as recorded, reading what it checks."""
    require_bucket(settings)
    remote = Remote(settings.archive)
    report = VerifyReport(settings.archive.bucket)
    with open_tree(settings, write=False, locked=False) as opened:
        catalog = opened.catalog
        bags = catalog.bags()
        blobs = catalog.blobs()
        points = catalog.points()
        years = catalog.archived_years()
    listed = remote.list_keys(remote.prefix)
    for bag in bags:
        report.checked += 1
        _verify_bag(remote, bag, report)
        report.checked += 1
        recorded = {b.path: b for b in blobs.values() if b.bag == bag.key}
        manifest = _read(remote, bag.manifest, BagManifest.parse, report)
        if manifest is None:
            continue
        if manifest.size != bag.size or manifest.bag != bag.key:
            report.problems.append(f"{bag.manifest} describes {manifest.bag} of "
                                   f"{manifest.size} bytes, recorded {bag.key} of {bag.size}")
        for member in manifest.members:
            blob = recorded.get(member.path)
            if blob is None or (blob.sha256, blob.size, blob.offset) != (
                    member.sha256, member.size, member.offset):
                report.problems.append(f"{bag.manifest}: member {member.path} does not "
                                       "match the catalog (SHA-256, size or offset)")
                break
    for point in points:
        report.checked += 1
        record = _read(remote, point.record_key, BackupPoint.parse, report)
        if record is not None and not all(
                blobs.get(f.name) is not None and blobs[f.name].sha256 == f.sha256
                for f in record.chain):
            report.problems.append(f"{point.record_key} does not match the catalog")
        if point.index_key is not None:
            report.checked += 1
            if point.index_key not in listed:
                report.problems.append(f"{point.index_key} is missing")
    for year in years:
        report.checked += 1
        _read(remote, year.index_key, YearPoint.parse, report)
    for key in (layout.SYSTEM_CATALOG, layout.SYSTEM_CONFIG_KEY, layout.SYSTEM_SETUP):
        report.checked += 1
        if remote.key(key) not in listed:
            report.problems.append(f"{remote.key(key)} is missing")
    known = ({b.key for b in bags} | {b.manifest for b in bags}
             | {p.record_key for p in points} | {p.index_key for p in points}
             | {y.index_key for y in years})
    for key in sorted(listed):
        if remote.relative(key).startswith(layout.PREFIXES) and key not in known:
            report.notes.append(f"{key} is in the bucket but not in the catalog (left by an "
                                "interrupted run, pruned from the catalog, or another tree's)")
    for upload in remote.uploads(remote.prefix):
        report.notes.append(f"an upload of {upload['Key']} is in progress since "
                            f"{upload.get('Initiated')} (the next archive run aborts it if "
                            "no run owns it)")
    return report


def _verify_bag(remote: Remote, bag, report: VerifyReport) -> None:
    head = remote.head(bag.key)
    if head is None:
        report.problems.append(f"bag {bag.key} is missing")
        return
    if head["ContentLength"] != bag.size:
        report.problems.append(f"bag {bag.key} is {head['ContentLength']} bytes, "
                               f"recorded {bag.size}")
    klass = head.get("StorageClass", "STANDARD")
    if klass != bag.storage_class:
        report.problems.append(f"bag {bag.key} is in {klass}, recorded {bag.storage_class}")
    reported = head.get("ChecksumSHA256")
    if reported and reported.split("-")[0] != bag.checksum.split("-")[0]:
        report.problems.append(f"bag {bag.key} has checksum {reported}, "
                               f"recorded {bag.checksum}")
    elif not reported:
        report.notes.append(f"bag {bag.key}: the server reports no SHA-256 checksum")


def _read(remote: Remote, key: str, parse, report: VerifyReport):
    """A record read and parsed, or None with the problem reported."""
    try:
        data = remote.get_json(key)
        if data is None:
            report.problems.append(f"{key} is missing")
            return None
        return parse(data, key)
    except RecordError as error:
        report.problems.append(error.message)
    except ArchiveError as error:
        report.problems.append(error.message)
    return None


def setup(settings: Settings) -> list[str]:
    """Prepare the bucket; return what was checked and done, a line each."""
    require_bucket(settings)
    remote = Remote(settings.archive)
    done = []
    remote.check_bucket()
    done.append(f"bucket {remote.bucket} is reachable")
    probe = remote.key("system/setup-probe")
    remote.put_bytes(probe, b"cya", "text/plain")
    remote.delete(probe)
    done.append("writing and deleting objects works")
    remote.block_public_access()
    done.append("public access blocked")
    remote.add_lifecycle_rule(LIFECYCLE_RULE, days=7)
    done.append(f"lifecycle rule {LIFECYCLE_RULE}: abort unfinished uploads after 7 days")
    if remote.versioning() == "Enabled":
        done.append("warning: versioning is on, so pruned objects stay (and are billed) as "
                    "old versions; add a rule expiring noncurrent versions")
    lock = remote.object_lock()
    if lock is None:
        done.append("object lock is off (see README: ransomware protection)")
    else:
        done.append(f"object lock is on: {lock}; prune needs s3:BypassGovernanceRetention "
                    "or waits for the retention to end")
    return done


@dataclass
class PruneResult:
    plan: PrunePlan
    applied: bool
    early_deletion_avoided: float  # what deleting the deferred objects now would cost
    deleted: list[str] = field(default_factory=list)
    queued: list[tuple[str, str]] = field(default_factory=list)  # still waiting (key, due)

    def as_json(self) -> dict:
        return {"version": 1, "applied": self.applied,
                "drop": [{"point": p.name, "why": p.why} for p in self.plan.drop],
                "keep": [p.name for p in self.plan.keep],
                "delete": [o.key for o in self.plan.delete],
                "defer": [{"key": o.key, "days_left": round(days, 1)}
                          for o, days in self.plan.defer],
                "early_deletion_avoided_usd": round(self.early_deletion_avoided, 2),
                "deleted": self.deleted, "queued": [list(q) for q in self.queued]}


def _age_days(uploaded_at: str, now: datetime) -> float:
    return (now - parse_record_time(uploaded_at)).total_seconds() / 86400


def prune(settings: Settings, now: datetime, apply: bool) -> PruneResult:
    """Plan (and with ``apply`` carry out) the remote retention."""
    require_bucket(settings)
    with open_tree(settings, write=apply, locked=apply) as opened:
        return prune_opened(opened, now, apply)


def prune_plan(opened: OpenTree, now: datetime) -> PrunePlan:
    """The remote retention's plan for the tree and catalog as they are (pure core:
    core.retention.plan_prune)."""
    catalog = opened.catalog
    archive = opened.settings.archive
    blobs = catalog.blobs()
    bags = catalog.bags()
    points = catalog.points()
    years = catalog.archived_years()
    view = opened.view
    current = [leaf for leaf in [view.newest_leaf()] if leaf is not None]
    if not current and points:  # an empty tree (after cya recover): the newest point leads
        current = [max(level_of(p.level) for p in points)]
    decisions = keep_points({p.time: level_of(p.level) for p in points},
                            {format_time(r.time) for r in restorable(view)},
                            view.levels(), view.chained(), current,
                            opened.settings.trim.keep_for,
                            [y.year for y in years], archive.keep_years)

    def bags_of(names) -> frozenset[str]:
        return frozenset(blobs[n].bag for n in names if n in blobs)

    planned = []
    for point in points:
        keep, why = decisions[f"backup {point.time}"]
        planned.append(Point(f"backup {point.time}", keep, bags_of(point.names),
                             tuple(k for k in (point.record_key, point.index_key) if k), why))
    for year in years:
        keep, why = decisions[f"year {year.year}"]
        planned.append(Point(f"year {year.year}", keep,
                             bags_of(catalog.year_files(year.year).values()),
                             (year.index_key,), why))
    objects = [RemoteObject(b.key, b.size, _age_days(b.uploaded_at, now),
                            b.storage_class in ARCHIVE_CLASSES) for b in bags]
    return plan_prune(planned, objects, archive.min_age_days)


def prune_opened(opened: OpenTree, now: datetime, apply: bool,
                 remote: Remote | None = None) -> PruneResult:
    catalog = opened.catalog
    prices = Prices()
    the_plan = prune_plan(opened, now)
    avoided = sum(early_deletion(prices, o.size, 1, o.age_days) for o, _ in the_plan.defer)
    result = PruneResult(the_plan, apply, avoided)
    if not apply:
        return result
    manifests = {b.key: b.manifest for b in catalog.bags()}
    queue = [(key, record_time(now)) for point in the_plan.drop for key in point.records]
    for item, days in [(o, 0.0) for o in the_plan.delete] + list(the_plan.defer):
        due = record_time(now + timedelta(days=days))  # a bag and its manifest go together
        queue += [(item.key, due), (manifests[item.key], due)]
    dropped_backups = [p.name.split(" ", 1)[1] for p in the_plan.drop
                       if p.name.startswith("backup ")]
    dropped_years = [p.name.split(" ", 1)[1] for p in the_plan.drop
                     if p.name.startswith("year ")]
    if not queue and not catalog.deletions():
        return result
    catalog.drop_points(dropped_backups, dropped_years, queue)
    remote = remote or Remote(opened.settings.archive)
    for key, due in catalog.deletions():
        if parse_record_time(due) <= now:
            remote.delete(key)
            catalog.deleted(key, record_time(now))
            result.deleted.append(key)
        else:
            result.queued.append((key, due))
    if result.deleted or the_plan.drop:
        copy_system(opened.tree, catalog, remote, opened.settings)
    return result
