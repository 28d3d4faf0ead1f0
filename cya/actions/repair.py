"""``cya repair [NAME...]``: put back damaged or missing duplicity files from a good copy:
another level of the tree, or the bucket. Without NAMEs it repairs what the last
``cya check`` found (``CHECK_DAMAGE`` in the catalog).

Steps, and the crash points tests kill a real process at:

1. plan, under a shared lock: read every copy of each name in the tree and compare it
   with the reference SHA-256 (recorded when the file entered the tree, else the bag
   manifest's: cya/actions/check.py). A name needs repair in every level holding a copy
   that does not match, and in every level it belongs in and is missing from
   (core.integrity.missing). The good copy is an inode of the tree that matched, else
   the bucket's member (``catalog.blobs``), whose recorded SHA-256 must be the
   reference too;
2. from the bucket: thaw the bags (cya/archive/retrieve.py) without holding the tree
   lock, since a Deep Archive thaw takes hours; exit 75 until they are readable
   (or ``--wait``). A thaw asked for is remembered in the catalog;
3. under the exclusive lock (a writer: an interrupted backup is finished and old
   staging removed first), plan again (the tree may have changed meanwhile), fetch
   the members with ranged GETs into ``.cya/staging/repair-*``, every SHA-256
   verified, each file fsynced -> crash point ``repair-fetched``;
4. for every level: hard link the good copy under a temporary name in that staging
   directory and rename it over the level's damaged file (or into the gap), then fsync
   the level's ``files/`` -> crash point ``repair-linked`` (after each level).
   Manifests go last, as when a backup is published;
5. remove the staging directory; forget the repaired names in ``CHECK_DAMAGE``.

Every intermediate state is valid: each level holds either its old file or the good
one, never a half-written file (``rename`` replaces in one step), and what a crash
leaves in staging is removed by the next writer (interrupted.finish_or_undo).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cya.actions.check import damaged_names, digest_of, inodes, placed, reference
from cya.catalog import CHECK_DAMAGE, BlobRecord, Catalog
from cya.config import Settings
from cya.core import units
from cya.core.integrity import missing
from cya.core.names import parse_name
from cya.core.timescale import Level
from cya.errors import ArchiveError, UsageError
from cya.fsutil import crash_point, fsync_dir, remove_tree
from cya.opentree import OpenTree, open_tree

if TYPE_CHECKING:
    from cya.archive.retrieve import ArchiveFetch
    from cya.archive.s3 import Remote

@dataclass(frozen=True)
class RepairRequest:
    names: tuple[str, ...] = ()  # empty: what the last cya check found
    tier: str = "bulk"
    wait: bool = False
    dry_run: bool = False
    max_cost: float | None = None  # refuse a thaw whose estimate is dearer (USD)


@dataclass(frozen=True)
class Fix:
    """One duplicity file to put back into some levels, and where its good copy is."""

    name: str
    levels: tuple[Level, ...]  # where the good copy goes
    why: str  # "damaged in ...; missing from ..."
    source: str  # "tree" | "bucket"
    good: Path | None = None  # source "tree": a copy that matched the reference
    good_level: Level | None = None  # ... in this level
    blob: BlobRecord | None = None  # source "bucket"

    def as_json(self) -> dict:
        return {"name": self.name, "levels": [level.relpath for level in self.levels],
                "why": self.why, "source": self.source,
                "copy": self.good_level.relpath if self.good_level is not None else None,
                "bag": self.blob.bag if self.blob is not None else None}


@dataclass(frozen=True)
class RepairPlan:
    fixes: tuple[Fix, ...]
    fine: tuple[str, ...]  # names every level already holds good
    impossible: tuple[tuple[str, str], ...]  # (name, why no repair is possible)
    fetch: ArchiveFetch | None = None  # what the bucket's copies take
    tier: str = "bulk"

    @property
    def empty(self) -> bool:
        return not self.fixes


@dataclass(frozen=True)
class RepairResult:
    plan: RepairPlan
    repaired: tuple[Fix, ...]
    dry_run: bool
    asked: tuple[str, ...]  # the names looked at

    @property
    def ok(self) -> bool:
        return not self.plan.impossible

    def as_json(self) -> dict:
        fetch = self.plan.fetch
        return {
            "version": 1,
            "dry_run": self.dry_run,
            "names": list(self.asked),
            "repairs": [f.as_json() for f in self.plan.fixes],
            "repaired": [f.name for f in self.repaired],
            "fine": list(self.plan.fine),
            "impossible": [{"name": n, "why": w} for n, w in self.plan.impossible],
            "archive": None if fetch is None else {
                "tier": fetch.estimate.tier, "bags": len(fetch.bags),
                "thawed_bytes": fetch.estimate.thawed_bytes,
                "fetched_bytes": fetch.fetch_bytes, "hours": fetch.estimate.hours,
                "dollars": round(fetch.estimate.dollars, 4)},
        }


def run(settings: Settings, request: RepairRequest,
        say: Callable[[str], None] = lambda text: None) -> RepairResult:
    """Plan, thaw what the bucket must give, and repair (see the module doc). Raise
    ThawPending (exit 75) while bags thaw, UsageError for a dearer thaw than
    ``max_cost``, ArchiveError when the bucket fails or gives other bytes."""
    with open_tree(settings, write=False, record=True) as opened:
        names = request.names or damaged_names(opened.catalog)
        the_plan = plan(opened, names, request.tier)
    if request.dry_run or the_plan.empty:
        return RepairResult(the_plan, (), request.dry_run, tuple(names))
    _check_cost(the_plan, request)
    remote = None
    if the_plan.fetch is not None:
        from cya.archive.retrieve import thaw
        from cya.archive.s3 import Remote

        remote = Remote(settings.archive)
        with open_tree(settings, write=False, locked=False, record=True) as opened:
            thaw(remote, opened.catalog, the_plan.fetch, request.tier, request.wait, say)
    with open_tree(settings, write=True) as opened:
        if opened.finished:
            say(opened.finished)
        again = plan(opened, [f.name for f in the_plan.fixes], request.tier)
        if again.fetch is not None:
            from cya.archive.retrieve import thaw
            from cya.archive.s3 import Remote

            remote = remote or Remote(settings.archive)
            _check_cost(again, request)
            thaw(remote, opened.catalog, again.fetch, request.tier, request.wait, say)
        repaired = apply(opened, again, remote, say)
        _forget(opened.catalog, [f.name for f in repaired] + list(the_plan.fine))
    final = RepairPlan(again.fixes, the_plan.fine + again.fine,
                       the_plan.impossible + again.impossible, again.fetch, request.tier)
    return RepairResult(final, repaired, False, tuple(names))


def plan(opened: OpenTree, names: list[str], tier: str) -> RepairPlan:
    """Read every copy of ``names`` in the tree and say, per name, which levels need the
    good copy and where it comes from."""
    catalog, view = opened.catalog, opened.view
    expected = reference(catalog)
    blobs = catalog.blobs()
    found = inodes(view)
    lacking = missing(view, set(names), placed(catalog))
    fixes: list[Fix] = []
    fine: list[str] = []
    impossible: list[tuple[str, str]] = []
    for name in sorted(set(names)):
        parsed = parse_name(name)
        if parsed is None or parsed.partial:
            impossible.append((name, "it is not the name of a duplicity file"))
            continue
        want = expected.get(name)
        if want is None:
            impossible.append((name, "no SHA-256 was recorded for it, so no copy can be "
                                     "told good (cya check --record records them)"))
            continue
        good, good_level, damaged = None, None, []
        for item in found.get(name, {}).values():
            path = item.path(opened.tree)
            try:
                ok = item.size == want[0] and digest_of(path) == want
            except OSError:
                ok = False
            if ok and good is None:
                good, good_level = path, item.levels[0]
            elif not ok:
                damaged += item.levels
        gaps = list(lacking.get(name, ()))
        if not damaged and not gaps:
            fine.append(name)
            continue
        why = "; ".join(part for part in (
            "damaged in " + ", ".join(str(lv) for lv in sorted(damaged)) if damaged else "",
            "missing from " + ", ".join(str(lv) for lv in gaps) if gaps else "") if part)
        targets = tuple(sorted(set(damaged) | set(gaps)))
        blob = blobs.get(name)
        if good is not None:
            fixes.append(Fix(name, targets, why, "tree", good=good, good_level=good_level))
        elif blob is None:
            impossible.append((name, f"{why}, and no good copy is known: no other level "
                                     "holds it and the bucket does not"))
        elif not opened.settings.archive.enabled:
            impossible.append((name, f"{why}; the bag {blob.bag} holds it, but no bucket is "
                                     "configured ([archive] bucket)"))
        elif (blob.size, blob.sha256) != want:
            impossible.append((name, f"{why}; the bucket's copy differs from the SHA-256 "
                                     "recorded when the file entered the tree"))
        else:
            fixes.append(Fix(name, targets, why, "bucket", blob=blob))
    return RepairPlan(tuple(fixes), tuple(fine), tuple(impossible),
                      _fetch_plan(catalog, fixes, tier), tier)


def _fetch_plan(catalog: Catalog, fixes: list[Fix], tier: str) -> ArchiveFetch | None:
    """Just the members the bucket must give, their bags and the estimate."""
    needed = [f for f in fixes if f.source == "bucket"]
    if not needed:
        return None
    from cya.archive.retrieve import ArchiveFetch, Needed
    from cya.core.costs import Prices, retrieval

    members = tuple(Needed(f.name, f.blob) for f in needed)
    keys = {f.blob.bag for f in needed}
    bags = tuple(b for b in catalog.bags() if b.key in keys)
    estimate = retrieval(Prices(), tier, len(bags), sum(b.size for b in bags),
                         sum(m.blob.size for m in members), len(members))
    return ArchiveFetch(members, bags, estimate)


def _check_cost(the_plan: RepairPlan, request: RepairRequest) -> None:
    fetch = the_plan.fetch
    if fetch is None or request.max_cost is None:
        return
    if fetch.estimate.dollars > request.max_cost:
        raise UsageError(f"repairing from the archive would cost about "
                         f"${fetch.estimate.dollars:.2f}, more than --max-cost "
                         f"{request.max_cost:.2f}", "nothing was asked of S3; raise "
                         "--max-cost or choose --tier bulk")


def apply(opened: OpenTree, the_plan: RepairPlan, remote: Remote | None,
          say: Callable[[str], None]) -> tuple[Fix, ...]:
    """Put every good copy in place (steps 3-5 of the module doc); return the fixes."""
    tree = opened.tree
    if the_plan.empty:
        return ()
    staging = tree.staging / f"repair-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    try:
        if the_plan.fetch is not None:
            from cya.archive.retrieve import fetch

            assert remote is not None
            received = fetch(remote, the_plan.fetch, staging)
            say(f"fetched {units.size(received)} from {len(the_plan.fetch.bags)} bag(s), every "
                "SHA-256 verified")
            for fix in the_plan.fixes:
                if fix.source == "bucket":
                    _verify_fetched(staging / fix.name, fix)
        crash_point("repair-fetched")
        done = []
        for fix in sorted(the_plan.fixes, key=_manifest_last):
            source = fix.good if fix.good is not None else staging / fix.name
            for number, level in enumerate(fix.levels):
                files = tree.files_dir(level)
                temporary = staging / f"{fix.name}.{number}"
                os.link(source, temporary)
                os.rename(temporary, files / fix.name)
                fsync_dir(files)
                crash_point("repair-linked")
            done.append(fix)
        return tuple(done)
    finally:
        remove_tree(staging)


def _verify_fetched(path: Path, fix: Fix) -> None:
    """The fetched copy is the one recorded (retrieve.fetch checked the manifest's
    SHA-256, which the plan compared with the reference); make it private like every
    file of the tree."""
    os.chmod(path, 0o600)
    size, digest = digest_of(path)
    if (size, digest) != (fix.blob.size, fix.blob.sha256):
        raise ArchiveError(f"{fix.name} from {fix.blob.bag} is not the recorded file",
                           "run: cya archive verify")


def _manifest_last(fix: Fix) -> tuple[bool, str]:
    parsed = parse_name(fix.name)
    return (parsed is not None and parsed.role == "manifest", fix.name)


def _forget(catalog: Catalog, names: list[str]) -> None:
    """Drop repaired (or found good) names from what the last check found."""
    left = [n for n in damaged_names(catalog) if n not in set(names)]
    if left != damaged_names(catalog):
        catalog.set_meta(CHECK_DAMAGE, json.dumps(left) if left else None)
