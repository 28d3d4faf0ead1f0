"""``cya check``: verify the local tree without trusting it.

What it checks (nothing is decrypted, duplicity is not started):

1. **Data.** Every duplicity file's size against the size recorded when it entered the
   tree (every run: a ``stat`` costs nothing), and its SHA-256 (every file, or the
   ``--read-data-subset`` of them: core.integrity). A file is one inode linked into
   many levels: each inode is read once, and a mismatch is named with every level
   holding it.
2. **Hard links.** A name in several levels is one inode (a copy is a warning: it costs
   space, not data); an inode has as many links as the levels holding it (more means
   a link outside the levels, which keeps its bytes on disk after a trim); one inode
   never carries two names.
3. **Chains by name.** Every set of every level complete, no gaps, no empty file
   (core.integrity.set_problems); recorded names absent from a level they belong in;
   anything in a ``files/`` directory that is not a duplicity file of the tree.
4. **Where a good copy is.** For a damaged or missing file: another inode of the same
   name in the tree with the recorded size, or the bucket (``catalog.blobs``).
   ``cya repair`` (cya/actions/repair.py) puts it back.

The reference for a file is the SHA-256 the catalog recorded when it entered the tree;
for a file without one (an adopted tree, or one made by an older cya) the SHA-256 the
bag manifest recorded when the bucket took it. Files with neither are "not
verifiable": ``--record`` hashes them and records them as they are now.

The tree is held with a shared lock, so no backup or trim changes it meanwhile. The
catalog is written only for the rotation of a ``P%`` subset, ``--record``, and the list
of damaged names ``cya repair`` reads (``CHECK_DAMAGE``); on a read-only tree those
writes are skipped with a note.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cya.catalog import CHECK_DAMAGE, CHECK_ROTATION, Catalog
from cya.clock import iso, wall_time
from cya.config import Settings
from cya.core import units
from cya.core.integrity import (
    Subset,
    missing,
    needing,
    placed_levels,
    selected,
    set_problems,
)
from cya.core.names import parse_name, parse_time
from cya.core.timescale import Level
from cya.core.treeview import TreeView
from cya.errors import CyaError
from cya.opentree import OpenTree, open_tree
from cya.tree import FILES, Tree

CHUNK = 1 << 20
# kinds of problem about one duplicity file: what ``cya repair`` fixes
FILE_KINDS = ("damaged", "size", "empty", "unreadable", "missing")
ORDER = (*FILE_KINDS, "names", "chain", "unknown", "copy", "links", "empty-level")

Progress = Callable[[int, int, int, int], None]  # files read, to read, bytes read, to read


@dataclass(frozen=True)
class CheckRequest:
    subset: Subset | None = None  # None: read every file
    record: bool = False  # hash and record the files with no recorded SHA-256
    progress: Progress | None = None


@dataclass(frozen=True)
class Finding:
    """One problem (or warning) with what it is about and, for a damaged or missing
    file, where a good copy is."""

    kind: str
    detail: str
    name: str | None = None
    levels: tuple[str, ...] = ()
    source: str | None = None  # "tree" or "bucket": holds a good copy; None: nowhere known
    source_detail: str = ""
    needed_by: tuple[datetime, ...] = ()  # backups whose chains need this file

    @property
    def repairable(self) -> bool:
        return self.kind in FILE_KINDS and self.source is not None

    def as_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "levels": list(self.levels),
                "detail": self.detail,
                "repair": (f"cya repair {self.name}" if self.repairable else None),
                "source": self.source, "source_detail": self.source_detail or None,
                "needed_by": [iso(t) for t in self.needed_by]}


@dataclass(frozen=True)
class CheckReport:
    tree: str
    subset: str | None
    levels: int
    files: int  # duplicity names
    inodes: int
    bytes: int  # of every inode once
    read_files: int
    read_bytes: int
    verified: int  # inodes read whose SHA-256 matched
    not_verifiable: int  # names with no SHA-256 recorded (in the catalog or the bucket)
    skipped: int  # names with one that this run's subset did not read
    recorded: int  # names --record added
    problems: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def repair_names(self) -> list[str]:
        """Damaged or missing files a good copy of is known for."""
        return sorted({f.name for f in self.problems if f.repairable})

    @property
    def repair_command(self) -> str | None:
        names = self.repair_names
        return "cya repair " + " ".join(names) if names else None

    def as_json(self) -> dict:
        return {
            "version": 1,
            "tree": self.tree,
            "ok": self.ok,
            "subset": self.subset,
            "levels": self.levels,
            "files": self.files,
            "inodes": self.inodes,
            "bytes": self.bytes,
            "read": {"files": self.read_files, "bytes": self.read_bytes,
                     "verified": self.verified},
            "not_verifiable": self.not_verifiable,
            "skipped": self.skipped,
            "recorded": self.recorded,
            "problems": [f.as_json() for f in self.problems],
            "warnings": [f.as_json() for f in self.warnings],
            "notes": list(self.notes),
            "repair": self.repair_command,
        }


def run(settings: Settings, request: CheckRequest) -> CheckReport:
    """Check the configured tree (shared lock). Raise CyaError only when the tree cannot
    be opened; what is wrong inside it is the report's."""
    with open_tree(settings, write=False, record=True) as opened:
        return check_opened(opened, request)


# What the tree holds ----------------------------------------------------------------


@dataclass
class Copy:
    """One inode of a duplicity name and the levels linking it."""

    inode: int
    name: str
    size: int
    links: int
    levels: list[Level] = field(default_factory=list)
    digest: str | None = None  # SHA-256 when read

    def path(self, tree: Tree) -> Path:
        return tree.files_dir(self.levels[0]) / self.name


def inodes(view: TreeView) -> dict[str, dict[int, Copy]]:
    """name -> inode -> that copy and the levels holding it (``.part`` files left out:
    they are not the tree's)."""
    found: dict[str, dict[int, Copy]] = {}
    for level in view.levels():
        for name, info in view.info.get(level, {}).items():
            parsed = parse_name(name)
            if parsed is None or parsed.partial:
                continue
            item = found.setdefault(name, {}).setdefault(
                info.inode, Copy(info.inode, name, info.size, info.links))
            item.levels.append(level)
    return found


def reference(catalog: Catalog) -> dict[str, tuple[int, str]]:
    """name -> (size, SHA-256) a file must have: recorded when it entered the tree, else
    when the bucket took it."""
    found = {name: (blob.size, blob.sha256) for name, blob in catalog.blobs().items()}
    found.update(catalog.digests())
    return found


def digest_of(path: Path, progress: Callable[[int], None] | None = None) -> tuple[int, str]:
    """(size, SHA-256) of a file, read in 1 MiB pieces. Raise OSError."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return size, digest.hexdigest()


def placed(catalog: Catalog) -> dict[datetime, frozenset[Level]]:
    """Backup time -> the levels the catalog says it was placed in."""
    def level(relpath: str) -> Level:
        return Level(tuple(relpath.split("/")))

    return {parse_time(r.time): placed_levels(level(r.leaf), level(r.base) if r.base else None,
                                              [level(p) for p in r.new_levels.split()])
            for r in catalog.backups()}


# The check --------------------------------------------------------------------------


def check_opened(opened: OpenTree, request: CheckRequest) -> CheckReport:
    tree, catalog, view = opened.tree, opened.catalog, opened.view
    expected = reference(catalog)
    found = inodes(view)
    findings = _Findings(set(catalog.digests()))

    # 1. sizes (every file) and 2. links
    by_inode = findings.sizes_and_links(found, expected)

    # 3. data: each inode read once
    subset = request.subset
    position = int(catalog.get_meta(CHECK_ROTATION) or 0) if subset and subset.rotating else 0
    to_read, skipped, unverifiable = _choose(found, expected, findings.bad, subset, position)
    read_bytes, verified = findings.read(tree, to_read, expected, request.progress)
    if subset is not None and subset.rotating:  # only once the share was read
        _remember(catalog, CHECK_ROTATION, str(subset.next_position(position)),
                  findings.notes, "where the next --read-data-subset run starts")
    recorded = _record(tree, catalog, found, unverifiable, findings) if request.record else 0

    # 4. names that belong in a level and are not there; chains by name; strangers
    for name, lacking in sorted(missing(view, set(expected), placed(catalog)).items()):
        findings.problems.append(Finding("missing", "is missing", name, _paths(lacking)))
    for level in view.levels():
        sets = view.sets(level)
        level_problems = set_problems(sets)
        if level_problems:
            findings.problems.append(Finding("chain", "; ".join(level_problems), None,
                                             (level.relpath,)))
        elif not sets:
            findings.warnings.append(Finding("empty-level", "holds no backup", None,
                                             (level.relpath,)))
        findings.problems += _unknown(tree, level, view)

    if subset is not None:
        _still_damaged(catalog, found, {i.name for i in to_read}, findings)
    blobs = catalog.blobs()
    problems = [_with_source(f, found, expected, findings.bad, blobs,
                             opened.settings.archive.enabled, view) for f in findings.problems]
    report = CheckReport(
        tree=str(tree.root), subset=subset.text if subset else None,
        levels=len(view.files), files=len(found), inodes=len(by_inode),
        bytes=sum(items[0].size for items in by_inode.values()),
        read_files=len(to_read), read_bytes=read_bytes, verified=verified,
        not_verifiable=len(unverifiable) - recorded, skipped=skipped, recorded=recorded,
        problems=tuple(sorted(problems, key=_order)),
        warnings=tuple(sorted(findings.warnings, key=_order)), notes=tuple(findings.notes))
    _remember_damage(catalog, report, findings.notes)
    return report


class _Findings:
    """What one check found so far, and which copies are known damaged."""

    def __init__(self, entered: set[str]):
        self.entered = entered  # names whose reference was recorded when they entered
        self.problems: list[Finding] = []
        self.warnings: list[Finding] = []
        self.notes: list[str] = []
        self.bad: dict[str, set[int]] = {}  # name -> inodes known damaged

    def when(self, name: str) -> str:
        return "when it entered the tree" if name in self.entered else "when the bucket took it"

    def damaged(self, kind: str, item: Copy, detail: str) -> None:
        self.bad.setdefault(item.name, set()).add(item.inode)
        self.problems.append(Finding(kind, detail, item.name, _paths(item.levels)))

    def sizes_and_links(self, found: dict[str, dict[int, Copy]],
                        expected: dict[str, tuple[int, str]]) -> dict[int, list[Copy]]:
        """Steps 1 and 2: every copy's size against its reference, copies instead of
        links, link counts, one inode under two names. Return inode -> its copies."""
        by_inode: dict[int, list[Copy]] = {}
        for name, copies in found.items():
            for item in copies.values():
                by_inode.setdefault(item.inode, []).append(item)
                want = expected.get(name)
                if item.size == 0:
                    self.damaged("empty", item, "is empty (no duplicity file ever is)")
                elif want is not None and item.size != want[0]:
                    self.damaged("size", item, f"is {_sizes(item.size, want[0])} "
                                               f"{self.when(name)}")
                held = len(item.levels)
                if item.links > held:
                    self.warnings.append(Finding(
                        "links", f"has {item.links} links but the levels hold {held}: a "
                        "link outside the levels keeps its bytes on disk after they are "
                        "trimmed", name, _paths(item.levels)))
            if len(copies) > 1:
                where = "; ".join(", ".join(_paths(i.levels)) for i in copies.values())
                self.warnings.append(Finding(
                    "copy", f"is {len(copies)} separate files, not one hard-linked file "
                    f"({where}): it takes {len(copies) - 1} extra cop"
                    f"{'y' if len(copies) == 2 else 'ies'} of disk space",
                    name, _paths(sorted(lv for i in copies.values() for lv in i.levels))))
        for items in by_inode.values():
            names = sorted({i.name for i in items})
            if len(names) > 1:
                self.problems.append(Finding(
                    "names", "one file carries several names: " + ", ".join(names)
                    + " (each name is a different duplicity file)", names[0],
                    _paths(sorted({lv for i in items for lv in i.levels}))))
                for item in items:
                    self.bad.setdefault(item.name, set()).add(item.inode)
        return by_inode

    def read(self, tree: Tree, to_read: list[Copy], expected: dict[str, tuple[int, str]],
             progress: Progress | None) -> tuple[int, int]:
        """Step 3: read each copy once and compare; return (bytes read, copies that
        matched)."""
        total = sum(i.size for i in to_read)
        done_files = done_bytes = verified = 0

        def advance(count: int) -> None:
            nonlocal done_bytes
            done_bytes += count
            if progress is not None:
                progress(done_files, len(to_read), done_bytes, total)

        for item in to_read:
            try:
                size, item.digest = digest_of(item.path(tree), advance)
            except OSError as error:
                self.damaged("unreadable", item, f"cannot be read ({error.strerror or error})")
                continue
            finally:
                done_files += 1
            want = expected.get(item.name)
            if (size, item.digest) == want:
                verified += 1
            elif want is not None:
                self.damaged("damaged", item, "is damaged: its SHA-256 differs from the one "
                             f"recorded {self.when(item.name)}")
        if progress is not None:
            progress(done_files, len(to_read), done_bytes, total)
        return done_bytes, verified


def _choose(found: dict[str, dict[int, Copy]], expected: dict[str, tuple[int, str]],
            bad: dict[str, set[int]], subset: Subset | None, position: int
            ) -> tuple[list[Copy], int, list[str]]:
    """The inodes this run reads, how many verifiable names its subset skips, and the
    names with no reference."""
    arc = subset.arc(position) if subset is not None else None
    to_read, skipped, unverifiable = [], 0, []
    for name in sorted(found):
        if name not in expected:
            unverifiable.append(name)
            continue
        if arc is not None and not selected(name, *arc):
            skipped += 1
            continue
        to_read += [i for i in found[name].values() if i.inode not in bad.get(name, ())]
    return to_read, skipped, unverifiable


def _record(tree: Tree, catalog: Catalog, found: dict[str, dict[int, Copy]],
            names: list[str], findings: _Findings) -> int:
    """--record: hash the files without a reference and record them as they are now
    (when every copy of a name agrees). Return how many were recorded."""
    rows = []
    for name in names:
        digests = set()
        for item in found[name].values():
            if item.inode in findings.bad.get(name, ()):
                break
            try:
                digests.add(digest_of(item.path(tree)))
            except OSError as error:
                findings.damaged("unreadable", item, f"cannot be read ({error.strerror})")
                break
        else:
            if len(digests) == 1:
                size, digest = digests.pop()
                rows.append((name, size, digest))
            else:
                findings.problems.append(Finding(
                    "damaged", "has copies that differ and no recorded SHA-256 to tell "
                    "which is right", name,
                    _paths(sorted(lv for i in found[name].values() for lv in i.levels))))
    if not rows:
        return 0
    try:
        return catalog.record_digests(rows, wall_time())
    except CyaError as error:
        findings.notes.append(f"could not record the SHA-256 of {len(rows)} file(s): "
                              f"{error.message}")
        return 0


def _unknown(tree: Tree, level: Level, view: TreeView) -> list[Finding]:
    """Entries of a level's ``files/`` that are not duplicity files of the tree."""
    directory = tree.files_dir(level)
    known = view.files.get(level, frozenset())
    found = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        parsed = parse_name(entry.name)
        if entry.name in known and parsed is not None and not parsed.partial:
            continue
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            what = "a symbolic link"
        elif stat.S_ISDIR(mode):
            what = "a directory"
        elif parsed is not None and parsed.partial:
            what = "a partial file duplicity left"
        elif parsed is not None:
            what = "not a regular file"
        else:
            what = "not a duplicity file"
        found.append(Finding("unknown", f"{level.relpath}/{FILES}/{entry.name} is {what}: "
                             "move it out of the tree", entry.name, (level.relpath,)))
    return found


def _with_source(finding: Finding, found: dict[str, dict[int, Copy]],
                 expected: dict[str, tuple[int, str]], bad: dict[str, set[int]],
                 blobs: dict, archive_on: bool, view: TreeView) -> Finding:
    """A file finding with where a good copy is (another inode of the name in the tree
    with the reference size and digest, when read; else the bucket) and the backups
    that need it."""
    if finding.kind not in FILE_KINDS or finding.name is None:
        return finding
    name = finding.name
    finding = dataclasses.replace(finding, needed_by=tuple(needing(view, name)))
    want = expected.get(name)
    if want is not None:
        for item in found.get(name, {}).values():
            if item.inode in bad.get(name, ()) or item.size != want[0]:
                continue
            if item.digest is not None and item.digest != want[1]:
                continue
            return _replace(finding, "tree", f"a good copy is in {item.levels[0]}")
    if name in blobs:
        if archive_on:
            return _replace(finding, "bucket", f"the bucket holds it ({blobs[name].bag})")
        return _replace(finding, None, f"the bag {blobs[name].bag} holds it, but no bucket "
                                       "is configured")
    return _replace(finding, None, "no good copy is known (not in another level, not in "
                                   f"the bucket): the {len(finding.needed_by)} backup(s) "
                                   "that need it cannot be restored from the tree")


def _replace(finding: Finding, source: str | None, detail: str) -> Finding:
    return dataclasses.replace(finding, source=source, source_detail=detail)


def _still_damaged(catalog: Catalog, found: dict[str, dict[int, Copy]], read: set[str],
                   findings: _Findings) -> None:
    """A subset run does not read every file again: what an earlier check found damaged
    and this one did not read is still a problem until ``cya repair`` fixes it."""
    reported = {f.name for f in findings.problems if f.kind in FILE_KINDS}
    for name in sorted(set(damaged_names(catalog)) - read - reported):
        if name not in found:
            continue  # trimmed away since
        copies = found[name].values()
        findings.bad.setdefault(name, set()).update(c.inode for c in copies)
        findings.problems.append(Finding(
            "damaged", "was found damaged by an earlier cya check (this subset did not read "
            "it again)", name, _paths(sorted(lv for c in copies for lv in c.levels))))


def damaged_names(catalog: Catalog) -> list[str]:
    """What the last ``cya check`` found damaged or missing (and no repair fixed yet)."""
    try:
        return sorted(json.loads(catalog.get_meta(CHECK_DAMAGE) or "[]"))
    except ValueError:
        return []


def _remember_damage(catalog: Catalog, report: CheckReport, notes: list[str]) -> None:
    """Keep the damaged or missing names for ``cya repair`` (and later subset runs)."""
    keep = sorted({f.name for f in report.problems if f.kind in FILE_KINDS and f.name})
    if keep != damaged_names(catalog):
        _remember(catalog, CHECK_DAMAGE, json.dumps(keep) if keep else None, notes,
                  "the damaged files for cya repair")


def _remember(catalog: Catalog, key: str, value: str | None, notes: list[str],
              what: str) -> None:
    try:
        catalog.set_meta(key, value)
    except CyaError as error:
        notes.append(f"could not remember {what} in the catalog: {error.message}")


def _sizes(now: int, then: int) -> str:
    """"773 B, 1.5 kB": two sizes as people read them, exact when that alone differs."""
    shown, was = units.size(now), units.size(then)
    return f"{now} bytes, {then}" if shown == was else f"{shown}, {was}"


def _paths(levels) -> tuple[str, ...]:
    return tuple(level.relpath for level in levels)


def _order(finding: Finding) -> tuple:
    return (ORDER.index(finding.kind), finding.name or "", finding.levels)
