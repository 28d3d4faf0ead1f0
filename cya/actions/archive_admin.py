"""``cya archive status | verify | setup``: what the archive holds, whether the bucket
still holds it, and preparing a bucket.

``status`` reads only the catalog and the tree (no network: it is what monitoring
polls). ``verify`` HEADs every object the catalog records and compares size,
storage class and checksum; anything missing or different is a problem (exit 1).
``setup`` checks the bucket can be reached and written, blocks public access, and
adds a lifecycle rule that aborts multipart uploads a dead run left behind.
``prune`` drops archived years beyond ``keep_years``; an object leaves the bucket
only when no kept year needs it and it is ``min_age_days`` old. The catalog's
deletion queue is written first (one transaction), then each object is deleted and
its queue row removed: a crash between leaves a queue entry the next prune finishes,
never an object nobody remembers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from cya.actions.archive import require_bucket
from cya.archive import layout
from cya.archive.s3 import Remote
from cya.catalog import SYSTEM_COPIED, YearRecord
from cya.clock import parse_record_time, record_time
from cya.config import Settings
from cya.core.costs import Prices, early_deletion, storage_month
from cya.core.retention import PrunePlan, RemoteObject, awaiting_archive, plan_prune
from cya.opentree import open_tree

LIFECYCLE_RULE = "cya-abort-incomplete-uploads"


@dataclass(frozen=True)
class ArchiveStatus:
    bucket: str
    years: list[YearRecord]
    bags: int
    bytes: int
    dollars_month: float
    awaiting: list[str]
    thaws: dict[str, str]
    system_copied_at: str | None

    def as_json(self) -> dict:
        return {**asdict(self), "years": [asdict(y) for y in self.years]}


def status(settings: Settings) -> ArchiveStatus:
    require_bucket(settings)
    with open_tree(settings, write=False, locked=False) as opened:
        catalog = opened.catalog
        bags = catalog.bags()
        size = sum(b.size for b in bags)
        thaws = {bag: f"{tier}, asked {asked}, kept {days} days"
                 for bag, (tier, days, asked) in catalog.thaws().items()}
        return ArchiveStatus(
            bucket=settings.archive.bucket, years=catalog.archived_years(), bags=len(bags),
            bytes=size, dollars_month=storage_month(Prices(), size, len(bags)),
            awaiting=[y.relpath for y in awaiting_archive(opened.view,
                                                          catalog.archived_year_paths())],
            thaws=thaws,
            system_copied_at=catalog.get_meta(SYSTEM_COPIED))


@dataclass
class VerifyReport:
    bucket: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def verify(settings: Settings) -> VerifyReport:
    """HEAD every recorded bag, manifest and year index; list what the catalog does not know."""
    require_bucket(settings)
    remote = Remote(settings.archive)
    report = VerifyReport(settings.archive.bucket)
    with open_tree(settings, write=False, locked=False) as opened:
        bags = opened.catalog.bags()
        years = opened.catalog.archived_years()
    listed = remote.list_keys(remote.prefix)
    for bag in bags:
        report.checked += 1
        head = remote.head(bag.key)
        if head is None:
            report.problems.append(f"bag {bag.key} is missing")
            continue
        if head["ContentLength"] != bag.size:
            report.problems.append(f"bag {bag.key} is {head['ContentLength']} bytes, "
                                   f"recorded {bag.size}")
        klass = head.get("StorageClass", "STANDARD")
        if klass != bag.storage_class:
            report.problems.append(f"bag {bag.key} is in {klass}, recorded {bag.storage_class}")
        reported = head.get("ChecksumSHA256")
        if reported and reported != bag.checksum:
            report.problems.append(f"bag {bag.key} has checksum {reported}, "
                                   f"recorded {bag.checksum}")
        elif not reported:
            report.notes.append(f"bag {bag.key}: the server reports no SHA-256 checksum")
    for key in [b.manifest for b in bags] + [y.index_key for y in years] + \
            [remote.key(layout.SYSTEM_CATALOG), remote.key(layout.SYSTEM_CONFIG_KEY)]:
        report.checked += 1
        if key not in listed:
            report.problems.append(f"{key} is missing")
    known = {b.key for b in bags} | {b.manifest for b in bags} | {y.index_key for y in years}
    for key in sorted(listed):
        if remote.relative(key).startswith(layout.PREFIXES) and key not in known:
            report.notes.append(f"{key} is in the bucket but not in the catalog "
                                "(left by an interrupted run, or by another tree)")
    return report


def setup(settings: Settings) -> list[str]:
    """Prepare the bucket; return what was checked and done, a line each."""
    require_bucket(settings)
    remote = Remote(settings.archive)
    client, bucket = remote.client, remote.bucket
    done = []
    remote.check_bucket()
    done.append(f"bucket {bucket} is reachable")
    probe = remote.key("system/setup-probe")
    remote.put_bytes(probe, b"cya", "text/plain")
    remote.delete(probe)
    done.append("writing and deleting objects works")
    with remote.errors("block public access"):
        client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    done.append("public access blocked")
    with remote.errors("set the lifecycle rule"):
        try:
            rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        except client.exceptions.ClientError as error:
            if "NoSuchLifecycleConfiguration" not in str(error):
                raise
            rules = []
        rules = [r for r in rules if r.get("ID") != LIFECYCLE_RULE]
        rules.append({"ID": LIFECYCLE_RULE, "Status": "Enabled",
                      "Filter": {"Prefix": remote.prefix},
                      "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}})
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    done.append(f"lifecycle rule {LIFECYCLE_RULE}: abort unfinished uploads after 7 days")
    with remote.errors("read versioning"):
        versioning = client.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning == "Enabled":
        done.append("warning: versioning is on, so pruned objects stay (and are billed) as "
                    "old versions; add a rule expiring noncurrent versions")
    return done


@dataclass
class PruneResult:
    plan: PrunePlan
    applied: bool
    early_deletion_avoided: float  # what deleting the deferred objects now would cost
    deleted: list[str] = field(default_factory=list)
    queued: list[tuple[str, str]] = field(default_factory=list)  # still waiting (key, due)

    def as_json(self) -> dict:
        return {"applied": self.applied, "drop_years": list(self.plan.drop_years),
                "keep_years": list(self.plan.keep_years),
                "delete": [o.key for o in self.plan.delete],
                "defer": [{"key": o.key, "days_left": round(days, 1)}
                          for o, days in self.plan.defer],
                "early_deletion_avoided_usd": round(self.early_deletion_avoided, 2),
                "deleted": self.deleted, "queued": [list(q) for q in self.queued]}


def _age_days(uploaded_at: str, now: datetime) -> float:
    return (now - parse_record_time(uploaded_at)).total_seconds() / 86400


def prune(settings: Settings, now: datetime, apply: bool) -> PruneResult:
    """Plan (and with ``apply`` carry out) the remote retention: archived years beyond
    ``keep_years`` are dropped; their objects are deleted once no kept year needs them
    and they are ``min_age_days`` old, and wait in the catalog's queue until then."""
    require_bucket(settings)
    archive = settings.archive
    prices = Prices()
    with open_tree(settings, write=apply, locked=apply) as opened:
        tree, catalog = opened.tree, opened.catalog
        needs = catalog.year_needs()
        bags = {b.key: b for b in catalog.bags()}
        objects = [RemoteObject(key, bag.size, _age_days(bag.uploaded_at, now),
                                frozenset(needs.get(key, ())))
                   for key, bag in bags.items()]
        indexes = {y.year: y.index_key for y in catalog.archived_years()}
        the_plan = plan_prune(list(indexes), archive.keep_years, objects, archive.min_age_days)
        avoided = sum(early_deletion(prices, o.size, 1, o.age_days) for o, _ in the_plan.defer)
        result = PruneResult(the_plan, apply, avoided)
        if not apply:
            return result
        queue = [(indexes[year], record_time(now)) for year in the_plan.drop_years]
        for item, days in [(o, 0.0) for o in the_plan.delete] + list(the_plan.defer):
            due = record_time(now + timedelta(days=days))  # a bag and its manifest go together
            queue += [(item.key, due), (bags[item.key].manifest, due)]
        catalog.drop_years(list(the_plan.drop_years), queue)
        remote = Remote(archive)
        for key, due in catalog.deletions():
            if parse_record_time(due) <= now:
                remote.delete(key)
                catalog.deleted(key)
                result.deleted.append(key)
            else:
                result.queued.append((key, due))
        if result.deleted or the_plan.drop_years:
            from cya.actions.archive import copy_system

            copy_system(tree, catalog, remote, settings)
        return result
