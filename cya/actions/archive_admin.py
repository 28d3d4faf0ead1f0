"""``cya archive status | verify | setup``: what the archive holds, whether the bucket
still holds it, and preparing a bucket.

``status`` reads only the catalog and the tree (no network: it is what monitoring
polls). ``verify`` HEADs every object the catalog records and compares size,
storage class and checksum; anything missing or different is a problem (exit 1).
``setup`` checks the bucket can be reached and written, blocks public access, and
adds a lifecycle rule that aborts multipart uploads a dead run left behind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from cya.actions.archive import awaiting, require_bucket
from cya.archive.s3 import Remote
from cya.catalog import Catalog, YearRecord
from cya.config import Settings
from cya.core.costs import Prices, storage_month
from cya.lock import TreeLock
from cya.tree import Tree

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


def status(settings: Settings, now: datetime) -> ArchiveStatus:
    require_bucket(settings)
    tree = Tree(settings.tree)
    tree.require()
    with TreeLock(tree.lock_path, shared=True), Catalog(tree.catalog_path) as catalog:
        bags = catalog.bags()
        size = sum(b.size for b in bags)
        thaws = {bag: f"{tier}, asked {asked}, kept {days} days"
                 for bag, (tier, days, asked) in catalog.thaws().items()}
        return ArchiveStatus(
            bucket=settings.archive.bucket, years=catalog.archived_years(), bags=len(bags),
            bytes=size, dollars_month=storage_month(Prices(), size, len(bags)),
            awaiting=[y.relpath for y in awaiting(tree.scan(), catalog)], thaws=thaws,
            system_copied_at=catalog.get_meta("system_copied_at"))


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
    tree = Tree(settings.tree)
    tree.require()
    remote = Remote(settings.archive)
    report = VerifyReport(settings.archive.bucket)
    with TreeLock(tree.lock_path, shared=True), Catalog(tree.catalog_path) as catalog:
        bags = catalog.bags()
        years = catalog.archived_years()
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
            [remote.key("system/catalog.sqlite"), remote.key("system/config.toml")]:
        report.checked += 1
        if key not in listed:
            report.problems.append(f"{key} is missing")
    known = {b.key for b in bags} | {b.manifest for b in bags} | {y.index_key for y in years}
    for key in sorted(listed):
        relative = key[len(remote.prefix):]
        if relative.startswith(("bags/", "manifests/", "years/")) and key not in known:
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
