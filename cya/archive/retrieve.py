"""Getting a chain back from the archive: thaw exactly the bags it needs, fetch exactly
the members it needs with ranged GETs, verify every SHA-256.

* What the archive can restore is read from the catalog alone: every archived backup
  is a chain of files in one level, every archived year a set of level directories
  with their files — the same data a scan of the tree gives (``archived_view``), so
  choosing the backup and its cheapest level is the same pure code as for the local
  tree (core.chains).
* A thaw is asked once per bag and remembered in the catalog; a rerun HEADs the
  bags and continues. While any bag is still thawing, the restore stops with
  ThawPending (exit 75) unless ``--wait``.
* Members next to each other in one bag are fetched in one ranged GET, streamed to
  their files in 1 MiB pieces (memory stays small whatever the bag size); a member
  whose SHA-256 differs from the manifest's fails the restore.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cya.archive.s3 import Remote, thaw_state
from cya.catalog import BagRecord, BlobRecord, Catalog
from cya.clock import wall_time
from cya.core.chains import Restorable
from cya.core.costs import Prices, RetrievalEstimate, retrieval
from cya.core.timescale import Level
from cya.core.treeview import FileInfo, TreeView
from cya.errors import ArchiveError, ThawPending
from cya.fsutil import fsync_dir

MERGE_GAP = 1 << 20  # fetch neighbours in one GET when less than this lies between them
CHUNK = 1 << 20
THAW_DAYS = 7
POLL_ENV = "CYA_THAW_POLL_SECONDS"  # how often --wait asks (default 15 minutes)


def archived_view(catalog: Catalog) -> TreeView:
    """What the bucket can restore, as a TreeView: the level of every kept archived
    backup with its chain's files, and every level of every kept archived year with
    its files (only files the bucket holds)."""
    blobs = catalog.blobs()
    files: dict[Level, dict[str, FileInfo]] = {}

    def add(level_path: str, name: str) -> None:
        if name in blobs:
            files.setdefault(Level(tuple(level_path.split("/"))), {})[name] = \
                FileInfo(blobs[name].size, 0, 1)

    for point in catalog.points():
        for name in point.names:
            add(point.level, name)
    for path, blob in catalog.archived_files():
        level_path, _, name = path.rpartition("/files/")
        add(level_path, blob.name)
    return TreeView({level: frozenset(names) for level, names in files.items()}, files)


@dataclass(frozen=True)
class Needed:
    path: str  # LEVEL/files/NAME
    blob: BlobRecord


@dataclass(frozen=True)
class ArchiveFetch:
    """What restoring one backup from the archive takes."""

    needed: tuple[Needed, ...]
    bags: tuple[BagRecord, ...]
    estimate: RetrievalEstimate

    @property
    def fetch_bytes(self) -> int:
        return sum(n.blob.size for n in self.needed)


def plan_fetch(catalog: Catalog, backup: Restorable, tier: str,
               prices: Prices | None = None) -> ArchiveFetch:
    """The members and bags the chain of ``backup`` needs, and the cost estimate."""
    level = backup.level.relpath
    blobs = catalog.blobs()
    needed = tuple(Needed(f"{level}/files/{name}", blobs[name])
                   for backup_set in backup.chain for name in backup_set.files)
    keys = {n.blob.bag for n in needed}
    bags = tuple(b for b in catalog.bags() if b.key in keys)
    ranges = len(_ranges(needed))
    estimate = retrieval(prices or Prices(), tier, len(bags), sum(b.size for b in bags),
                         sum(n.blob.size for n in needed), ranges)
    return ArchiveFetch(needed, bags, estimate)


def thaw(remote: Remote, catalog: Catalog, fetch: ArchiveFetch, tier: str, wait: bool,
         say: Callable[[str], None]) -> None:
    """Make every bag of ``fetch`` readable: ask for thaws not yet asked (and look again
    at once: a store that thaws at once, or a bag thawed already, goes straight
    through), then return when all are readable. Raise ThawPending while any is
    thawing (unless ``wait``: then ask again every ``$CYA_THAW_POLL_SECONDS``)."""
    poll = float(os.environ.get(POLL_ENV, "900"))
    while True:
        pending = []
        for bag in fetch.bags:
            state = _state(remote, bag.key)
            if state == "frozen":
                remote.request_thaw(bag.key, tier, THAW_DAYS)
                catalog.record_thaw(bag.key, tier, THAW_DAYS, wall_time())
                say(f"asked S3 to thaw {bag.key} ({tier})")
                state = _state(remote, bag.key)
            if state != "readable":
                pending.append(bag.key)
        if not pending:
            catalog.forget_thaws([b.key for b in fetch.bags])
            return
        hours = fetch.estimate.hours
        if not wait:
            raise ThawPending(f"{len(pending)} of {len(fetch.bags)} bag(s) are thawing "
                              f"({tier}, usually about {hours} hours)",
                              "run the same command again later, or add --wait")
        say(f"waiting for {len(pending)} bag(s) to thaw; asking again in {poll:.0f} s")
        time.sleep(poll)


def _state(remote: Remote, key: str) -> str:
    head = remote.head(key)
    if head is None:
        raise ArchiveError(f"bag {key} is not in the bucket", "run: cya archive verify")
    return thaw_state(head)


def _ranges(needed: Iterable[Needed]) -> list[list[Needed]]:
    """Group members by bag and offset into runs one ranged GET can fetch."""
    runs: list[list[Needed]] = []
    for item in sorted(needed, key=lambda n: (n.blob.bag, n.blob.offset)):
        last = runs[-1][-1] if runs else None
        if (last is not None and last.blob.bag == item.blob.bag
                and item.blob.offset - (last.blob.offset + last.blob.size) < MERGE_GAP):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def fetch(remote: Remote, fetch_plan: ArchiveFetch, target: Path) -> int:
    """Download every needed member under ``target`` (at its level path), verifying
    each SHA-256; return the bytes read from the bucket. Raise ArchiveError on a
    mismatch."""
    received = 0
    for run in _ranges(fetch_plan.needed):
        first = run[0].blob.offset
        end = run[-1].blob.offset + run[-1].blob.size
        received += end - first
        _fetch_run(remote, run, first, end, target)
    directories = {(target / n.path).parent for n in fetch_plan.needed}
    for directory in directories:
        fsync_dir(directory)
    return received


class _Stream:
    """A ranged GET's body read as consecutive pieces from a known start offset."""

    def __init__(self, chunks, position: int):
        self.chunks = chunks
        self.position = position
        self.buffer = memoryview(b"")

    def take(self, count: int):
        """Yield the next ``count`` bytes, in pieces. Raise EOFError if the body ends."""
        while count:
            if not self.buffer:
                try:
                    self.buffer = memoryview(next(self.chunks))
                except StopIteration:
                    raise EOFError from None
            piece = self.buffer[:count]
            self.buffer = self.buffer[len(piece):]
            self.position += len(piece)
            count -= len(piece)
            yield piece


def _fetch_run(remote: Remote, run: list[Needed], first: int, end: int, target: Path) -> None:
    key = run[0].blob.bag
    with remote.errors(f"fetch from {key}"):
        body = remote.get_range(key, first, end)
        try:
            stream = _Stream(body.iter_chunks(CHUNK), first)
            for item in run:
                for _ in stream.take(item.blob.offset - stream.position):
                    pass  # tar headers between members
                path = target / item.path
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest = hashlib.sha256()
                with open(path, "wb") as out:
                    for piece in stream.take(item.blob.size):
                        digest.update(piece)
                        out.write(piece)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != item.blob.sha256:
                    raise ArchiveError(
                        f"{item.path} from {key} has SHA-256 {digest.hexdigest()[:16]}…, "
                        f"the manifest says {item.blob.sha256[:16]}…",
                        "the archived copy is damaged; run: cya archive verify")
        except EOFError:
            raise ArchiveError(f"{key} ended early while fetching bytes {first}-{end - 1}",
                               "run the restore again") from None
        finally:
            body.close()
