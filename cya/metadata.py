"""Record the metadata duplicity loses before each backup; re-apply it after a restore.

``record`` walks the sources (never following a symlink, never entering a
``skip`` path) and rewrites the metadata directory completely; cya includes
that directory in the same duplicity backup, so a restore of any backup holds
the metadata exactly as of that backup. The files and their formats are
described in cya.core.metadata; they are the text ``getfacl``/``getfattr``
print, so ``setfacl --restore`` and ``setfattr --restore`` re-apply them
without cya.

``apply`` re-applies what was recorded for a restored path, in an order that
keeps each step's work: re-link hard-link groups; punch holes back into
sparse files (a punch is a write, which drops file capabilities and, without
CAP_FSETID, setuid bits — so it comes before the xattrs, and the mode is put
back); set xattrs; set ACLs; set nanosecond mtimes last, each directory after
its contents. It never grows a file, never punches a hole over a byte that is
not zero, never replaces a file by a link to one whose content differs, and
never acts through a symlink. What cannot be applied is counted per kind.

Reading uses the standard library (``os.listxattr``/``os.getxattr``/``lstat``),
not the acl/attr tools: one walk serves all five files, honours ``skip``
(getfacl -R cannot exclude a sub-tree), and measured faster on 100,000 files
(benchmarks/metadata.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import grp
import os
import pwd
import re
import secrets
import stat
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from pathlib import Path

from cya.core import metadata as formats
from cya.core.metadata import (
    ACL_ACCESS,
    ACL_DEFAULT,
    FileAcl,
    FileTime,
    FileXattrs,
    FormatError,
    LinkGroup,
    SparseFile,
)
from cya.errors import MetadataError
from cya.fsutil import atomic_write

# Where in a tree the metadata directory lives (the lead's decision: ``TREE/.cya/metadata``,
# included in every backup); relative, so that a restore finds it at TARGET/TREE/...
TREE_RELATIVE_DIR = Path(".cya") / "metadata"
README_FILE = "README.txt"
README = f"""\
This directory was written by cya before the backup that holds it: the file
metadata duplicity does not keep, for every source of that backup. Names are
relative to /. To re-apply it to a plain `duplicity restore` into TARGET
(whole restore: TARGET holds the absolute paths), as root:

    cd TARGET
    setfacl --restore=THIS_DIR/{formats.ACL_FILE}
    setfattr --no-dereference --restore=THIS_DIR/{formats.XATTR_FILE}

{formats.HARDLINK_FILE}, {formats.SPARSE_FILE} and {formats.MTIME_FILE} hold hard-link groups,
holes of sparse files and nanosecond mtimes; `cya restore` re-applies all five.
""".encode()

_PUNCH_HOLE = 0x02  # FALLOC_FL_PUNCH_HOLE
_KEEP_SIZE = 0x01  # FALLOC_FL_KEEP_SIZE
_BLOCK = 4096
_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
_UNSUPPORTED = (errno.ENOTSUP, errno.EOPNOTSUPP)
_SAFE_OWNER = re.compile(r"[^\s:,#\\]+")

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    _fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    _fallocate.restype = ctypes.c_int
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _fallocate = None


# ---------------------------------------------------------------------------
# Recording


@dataclass(frozen=True)
class RecordStats:
    entries: int  # files, directories and others walked
    acls: int  # entries with an ACL beyond their permission bits
    xattrs: int  # entries with extended attributes
    link_groups: int
    link_names: int
    sparse: int
    times: int  # entries whose mtime is recorded to the nanosecond
    unreadable: int  # entries that could not be read (vanished, no permission)
    bytes_written: int  # size of the files written; unchanged files are not rewritten
    seconds: float

    def summary(self) -> str:
        text = (f"metadata of {self.entries} entries: {self.acls} with ACLs, {self.xattrs} with "
                f"xattrs, {self.link_groups} hard-link groups ({self.link_names} names), "
                f"{self.sparse} sparse, {self.times} exact times; {self.seconds:.2f} s")
        if self.unreadable:
            text += f"; {self.unreadable} unreadable"
        return text


@dataclass
class _Scan:
    acls: list[FileAcl] = field(default_factory=list)
    xattrs: list[FileXattrs] = field(default_factory=list)
    inodes: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    sparse: list[SparseFile] = field(default_factory=list)
    times: list[FileTime] = field(default_factory=list)
    entries: int = 0
    unreadable: int = 0


@lru_cache(maxsize=4096)
def _user_name(uid: int) -> str:
    """The name getfacl prints for ``uid``: the user's name, else the number."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
    return name if _SAFE_OWNER.fullmatch(name) else str(uid)


@lru_cache(maxsize=4096)
def _group_name(gid: int) -> str:
    try:
        name = grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
    return name if _SAFE_OWNER.fullmatch(name) else str(gid)


@lru_cache(maxsize=4096)
def _user_id(name: str) -> int:
    """The uid setfacl gives ``name``: the user's, else the number it spells; raise LookupError."""
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise LookupError(f"no user {name!r} on this system") from None


@lru_cache(maxsize=4096)
def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise LookupError(f"no group {name!r} on this system") from None


def _read_xattrs(path: bytes, name: bytes, info: os.stat_result, attributes: list[str],
                 scan: _Scan) -> None:
    """Record the ``attributes`` listed for ``path``: its ACLs apart, the other xattrs."""
    access = default = None
    values = []
    for attribute in attributes:
        key = os.fsencode(attribute)
        try:
            value = os.getxattr(path, attribute, follow_symlinks=False)
        except OSError:  # removed meanwhile, or unreadable: leave it out
            continue
        if key == ACL_ACCESS:
            access = value
        elif key == ACL_DEFAULT:
            default = value
        else:
            values.append((key, value))
    if values:
        scan.xattrs.append(FileXattrs(name, tuple(sorted(values))))
    if access is not None or default is not None:
        try:
            acl = formats.file_acl(
                name, info.st_mode, _user_name(info.st_uid), _group_name(info.st_gid),
                formats.decode_acl(access) if access else (),
                formats.decode_acl(default) if default else (), _user_name, _group_name)
        except FormatError:
            scan.unreadable += 1
            return
        if acl is not None:
            scan.acls.append(acl)


def _data_extents(path: bytes, size: int) -> tuple[tuple[int, int], ...] | None:
    """The data extents of a file (SEEK_DATA/SEEK_HOLE), or None when it cannot say."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        extents = []
        at = 0
        while at < size:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError as error:
                if error.errno == errno.ENXIO:  # nothing but hole up to the end
                    break
                return None
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end - start))
            at = end
        return tuple(extents)
    except OSError:
        return None
    finally:
        os.close(fd)


def _roots(sources: Sequence[Path], skip: set[bytes]) -> list[bytes]:
    """The sources as absolute byte paths, each once: none inside another or a skip path."""
    roots: list[bytes] = []
    for source in sorted({os.fsencode(os.path.abspath(s)) for s in sources}):
        if any(source == r or source.startswith(r.rstrip(b"/") + b"/")
               for r in [*roots, *skip]):
            continue
        roots.append(source)
    return roots


def _scan(sources: Sequence[Path], skip: Sequence[Path], read_xattrs: bool = True) -> _Scan:
    """Walk the sources depth first, names sorted, so that two walks of an unchanged
    source write the same files (duplicity then stores nearly nothing for them).

    This loop runs once per entry of every source before each backup: it is kept
    tight (one lstat and one listxattr per entry, locals, no call it can avoid)."""
    skipped = {os.fsencode(os.path.abspath(s)) for s in skip}
    scan = _Scan()
    times = scan.times
    inodes = scan.inodes
    by_name = attrgetter("name")
    is_dir, is_file, is_link = stat.S_ISDIR, stat.S_ISREG, stat.S_ISLNK
    listxattr = os.listxattr
    for root in _roots(sources, skipped):
        try:
            stack = [(root, os.lstat(root))]
        except OSError:
            scan.unreadable += 1
            continue
        while stack:
            path, info = stack.pop()
            name = path[1:] or b"."  # relative to /: every path here is absolute and normal
            mode = info.st_mode
            scan.entries += 1
            if read_xattrs:
                try:
                    attributes = listxattr(path, follow_symlinks=False)
                except OSError as error:
                    attributes = None
                    if error.errno not in _UNSUPPORTED:
                        scan.unreadable += 1
                if attributes:
                    _read_xattrs(path, name, info, attributes, scan)
            if info.st_mtime_ns % 1_000_000_000 or is_link(mode):
                times.append(FileTime(name, info.st_mtime_ns))
            if is_file(mode):
                if info.st_nlink > 1:
                    inodes.setdefault((info.st_dev, info.st_ino), []).append(name)
                if info.st_blocks * 512 < info.st_size:
                    _sparse(path, name, info, scan)
                continue
            if not is_dir(mode):
                continue
            try:
                with os.scandir(path) as listing:
                    entries = sorted(listing, key=by_name)
            except OSError:
                scan.unreadable += 1
                continue
            children = []
            for entry in entries:
                child = entry.path
                if child in skipped:
                    continue
                try:
                    children.append((child, entry.stat(follow_symlinks=False)))
                except OSError:
                    scan.unreadable += 1
            stack.extend(reversed(children))
    return scan


def _sparse(path: bytes, name: bytes, info: os.stat_result, scan: _Scan) -> None:
    """Record the data extents of a file that has fewer blocks than its size says,
    if it has holes (a compressed or inline file has none)."""
    extents = _data_extents(path, info.st_size)
    if extents is not None and formats.holes(info.st_size, extents):
        scan.sparse.append(SparseFile(name, info.st_size, extents))


def _write(path: Path, data: bytes) -> int:
    """Write ``data`` durably unless the file already holds it; return the bytes written."""
    try:
        if path.read_bytes() == data:
            return 0
    except OSError:
        pass
    atomic_write(path, data, 0o600)
    return len(data)


def record(sources: Sequence[Path], out_dir: Path, skip: Sequence[Path] = ()) -> RecordStats:
    """Record the metadata of every entry at or below ``sources`` into ``out_dir``, replacing
    what it held, and return counts. Never follows a symlink, never enters a ``skip``
    path (the tree, the cache). Entries that vanish or cannot be read while walking are
    counted, not fatal; raise OSError only if ``out_dir`` cannot be written."""
    started = time.perf_counter()
    scan = _scan(sources, skip)
    groups = [LinkGroup(tuple(names)) for names in scan.inodes.values() if len(names) > 1]
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = 0
    for name, data in ((formats.ACL_FILE, formats.format_acls(scan.acls)),
                       (formats.XATTR_FILE, formats.format_xattrs(scan.xattrs)),
                       (formats.HARDLINK_FILE, formats.format_links(groups)),
                       (formats.SPARSE_FILE, formats.format_sparse(scan.sparse)),
                       (formats.MTIME_FILE, formats.format_times(scan.times)),
                       (README_FILE, README)):
        written += _write(out_dir / name, data)
    return RecordStats(scan.entries, len(scan.acls), len(scan.xattrs), len(groups),
                       sum(len(g.names) for g in groups), len(scan.sparse), len(scan.times),
                       scan.unreadable, written, time.perf_counter() - started)


# ---------------------------------------------------------------------------
# Applying

HARD_LINKS = "hard links"
SPARSE = "sparse files"
XATTRS = "xattrs"
ACLS = "ACLs"
TIMES = "exact mtimes"
KINDS = (HARD_LINKS, SPARSE, XATTRS, ACLS, TIMES)
_DONE = {HARD_LINKS: "names re-linked", SPARSE: "files made sparse", XATTRS: "attributes set",
         ACLS: "files' ACLs set", TIMES: "mtimes set"}


@dataclass(frozen=True)
class KindOutcome:
    kind: str
    applied: int
    failed: int
    reason: str  # the most frequent reason of the failures, with what to do
    note: str = ""

    def line(self) -> str:
        text = f"{self.kind}: {self.applied} {_DONE[self.kind]}"
        if self.failed:
            text += f", {self.failed} not applied ({self.reason})"
        if self.note:
            text += f"; {self.note}"
        return text


@dataclass(frozen=True)
class ApplyReport:
    outcomes: tuple[KindOutcome, ...]

    @property
    def failed(self) -> int:
        return sum(outcome.failed for outcome in self.outcomes)

    def lines(self) -> list[str]:
        """One summary line per kind of metadata, with its counts."""
        return [outcome.line() for outcome in self.outcomes]

    def outcome(self, kind: str) -> KindOutcome:
        return next(outcome for outcome in self.outcomes if outcome.kind == kind)


def _reason(error: OSError, kind: str, attribute: bytes = b"") -> str:
    code = error.errno
    if code in _UNSUPPORTED:
        return f"the target file system does not support {kind}"
    if code in (errno.EPERM, errno.EACCES):
        namespace = attribute.split(b".")[0].decode(errors="replace")
        if namespace in ("trusted", "security"):
            return f"{namespace}.* needs root: restore as root"
        return "permission denied: restore as root or as the files' owner"
    return os.strerror(code) if code else str(error)


class _Applier:
    """Carries out an ApplyPlan under ``dest`` and tallies each kind."""

    def __init__(self, dest: bytes):
        self.dest = dest
        self.applied: Counter[str] = Counter()
        self.reasons: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
        self.safe_dirs: dict[bytes, bool] = {}
        self.dir_times: dict[bytes, tuple[int, int]] = {}

    def fail(self, kind: str, reason: str) -> None:
        self.reasons[kind][reason] += 1

    def path(self, kind: str, relative: bytes) -> bytes | None:
        """The restored path for ``relative``, or None when it is absent (nothing to do)
        or lies below a symlink (counted as a failure: never act through a link)."""
        if not relative:
            return self.dest
        path = self.dest + b"/" + relative
        parent = os.path.dirname(path)
        safe = self.safe_dirs.get(parent)
        if safe is None:
            safe = self.safe_dirs[parent] = os.path.realpath(parent) == parent
        if not safe:
            if os.path.lexists(parent):
                self.fail(kind, "a parent directory is a symlink in the restore")
            return None
        return path

    def lstat(self, path: bytes) -> os.stat_result | None:
        try:
            return os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):  # not in this restore
            return None

    # hard links

    def link_groups(self, groups: Sequence[LinkGroup]) -> None:
        for group in groups:
            members = []
            for relative in group.names:
                path = self.path(HARD_LINKS, relative)
                info = self.lstat(path) if path is not None else None
                if info is None:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    self.fail(HARD_LINKS, "a member is not a regular file in the restore")
                    continue
                members.append((path, info))
            if len(members) < 2:
                continue
            anchor, anchor_info = members[0]
            for path, info in members[1:]:
                if (info.st_dev, info.st_ino) == (anchor_info.st_dev, anchor_info.st_ino):
                    self.applied[HARD_LINKS] += 1
                    continue
                if not _same_file(anchor, anchor_info, path, info):
                    self.fail(HARD_LINKS, "members differ in the backup: changed while it ran")
                    continue
                self.replace_by_link(anchor, path)

    def replace_by_link(self, anchor: bytes, path: bytes) -> None:
        directory = os.path.dirname(path)
        if directory not in self.dir_times:
            info = os.lstat(directory)
            self.dir_times[directory] = (info.st_atime_ns, info.st_mtime_ns)
        temporary = directory + b"/.cya-link-" + secrets.token_hex(6).encode()
        try:
            os.link(anchor, temporary, follow_symlinks=False)
            os.rename(temporary, path)  # atomic: the name always holds the one content
        except OSError as error:
            if os.path.lexists(temporary):
                os.unlink(temporary)
            self.fail(HARD_LINKS, _reason(error, "hard links"))
            return
        self.applied[HARD_LINKS] += 1

    def restore_dir_times(self) -> None:
        """Linking changed these directories' mtimes; give them back what duplicity set."""
        for directory, times in self.dir_times.items():
            os.utime(directory, ns=times, follow_symlinks=False)

    # holes

    def make_sparse(self, files: Sequence[SparseFile]) -> None:
        for sparse in files:
            path = self.path(SPARSE, sparse.name)
            info = self.lstat(path) if path is not None else None
            if info is None:
                continue
            if not stat.S_ISREG(info.st_mode):
                self.fail(SPARSE, "not a regular file in the restore")
            elif info.st_size != sparse.size:
                self.fail(SPARSE, "size differs from the record: changed while the backup ran")
            elif _fallocate is None:
                self.fail(SPARSE, "this system cannot punch holes")
            else:
                try:
                    _punch_zero_runs(path, info, formats.holes(sparse.size, sparse.data))
                except OSError as error:
                    self.fail(SPARSE, _reason(error, "punching holes"))
                else:
                    self.applied[SPARSE] += 1

    # xattrs and ACLs

    def set_xattrs(self, files: Sequence[FileXattrs]) -> None:
        for xattrs in files:
            path = self.path(XATTRS, xattrs.name)
            if path is None or self.lstat(path) is None:
                continue
            for attribute, value in xattrs.attributes:
                try:
                    os.setxattr(path, attribute, value, follow_symlinks=False)
                except OSError as error:
                    self.fail(XATTRS, _reason(error, "xattrs", attribute))
                else:
                    self.applied[XATTRS] += 1

    def set_acls(self, acls: Sequence[FileAcl]) -> None:
        for acl in acls:
            path = self.path(ACLS, acl.name)
            info = self.lstat(path) if path is not None else None
            if info is None:
                continue
            if stat.S_ISLNK(info.st_mode):
                self.fail(ACLS, "a symlink in the restore")
                continue
            try:
                access, default = formats.acl_from_text(acl.lines, _user_id, _group_id)
            except LookupError as error:
                self.fail(ACLS, str(error.args[0]))
                continue
            try:
                if access and not formats.is_base(access):
                    os.setxattr(path, ACL_ACCESS, formats.encode_acl(access),
                                follow_symlinks=False)
                if default:
                    os.setxattr(path, ACL_DEFAULT, formats.encode_acl(default),
                                follow_symlinks=False)
            except OSError as error:
                self.fail(ACLS, _reason(error, "ACLs"))
            else:
                self.applied[ACLS] += 1

    # times

    def set_times(self, times: Sequence[FileTime]) -> None:
        for entry in times:
            path = self.path(TIMES, entry.name)
            info = self.lstat(path) if path is not None else None
            if info is None:
                continue
            try:
                os.utime(path, ns=(info.st_atime_ns, entry.mtime_ns), follow_symlinks=False)
            except OSError as error:
                self.fail(TIMES, _reason(error, "setting times"))
            else:
                self.applied[TIMES] += 1

    def report(self, outside_links: int) -> ApplyReport:
        outcomes = []
        for kind in KINDS:
            reasons = self.reasons[kind]
            note = ""
            if kind == HARD_LINKS and outside_links:
                note = (f"{outside_links} kept as plain files (their partners lie outside "
                        "the restored path)")
            outcomes.append(KindOutcome(kind, self.applied[kind], sum(reasons.values()),
                                        reasons.most_common(1)[0][0] if reasons else "", note))
        return ApplyReport(tuple(outcomes))


def _same_file(first: bytes, first_info: os.stat_result, second: bytes,
               second_info: os.stat_result) -> bool:
    """Whether two restored files are the same file's copies: equal size, mode, owner,
    mtime and every byte."""
    def key(info: os.stat_result) -> tuple:
        return (info.st_size, info.st_mode, info.st_uid, info.st_gid, int(info.st_mtime))

    if key(first_info) != key(second_info):
        return False
    with open(first, "rb", buffering=0) as one, open(second, "rb", buffering=0) as two:
        while True:
            block = one.read(_CHUNK)
            if block != two.read(_CHUNK):
                return False
            if not block:
                return True


def _punch_zero_runs(path: bytes, info: os.stat_result,
                     ranges: Sequence[tuple[int, int]]) -> None:
    """Deallocate every all-zero 4 KiB block of ``ranges`` (where the source had holes);
    keep the size, the mode and the mtime. Raise OSError if the file system refuses."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for offset, length in ranges:
            end = offset + length
            run_start = None
            at = offset
            while at < end:
                chunk = os.pread(fd, min(_CHUNK, end - at), at)
                if not chunk:
                    break
                if chunk == _ZEROS[:len(chunk)]:
                    run_start = at if run_start is None else run_start
                else:
                    for block in range(0, len(chunk), _BLOCK):
                        piece = chunk[block:block + _BLOCK]
                        if piece == _ZEROS[:len(piece)]:
                            run_start = at + block if run_start is None else run_start
                        else:
                            if run_start is not None:
                                _punch(fd, run_start, at + block - run_start)
                            run_start = None
                at += len(chunk)
            if run_start is not None:
                _punch(fd, run_start, at - run_start)
        after = os.fstat(fd)
        if stat.S_IMODE(after.st_mode) != stat.S_IMODE(info.st_mode):
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
        os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
    finally:
        os.close(fd)


def _punch(fd: int, offset: int, length: int) -> None:
    if _fallocate(fd, _PUNCH_HOLE | _KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def read_metadata(metadata_dir: Path) -> formats.Metadata:
    """The parsed files of a metadata directory. Raise MetadataError if it is missing or
    a file does not parse."""
    if not metadata_dir.is_dir():
        raise MetadataError(f"no recorded metadata at {metadata_dir}",
                            "a backup taken before cya recorded metadata has none: "
                            "restore it with --no-metadata")
    files = {}
    for name in formats.ALL_FILES:
        try:
            files[name] = (metadata_dir / name).read_bytes()
        except FileNotFoundError:
            continue
    try:
        return formats.parse(files)
    except FormatError as error:
        raise MetadataError(f"the recorded metadata in {metadata_dir} is damaged: {error}",
                            "restore with --no-metadata, or repair the file") from None


def apply(metadata_dir: Path, prefix: str, dest: Path, strict: bool = False) -> ApplyReport:
    """Re-apply the metadata recorded in ``metadata_dir`` for paths at or below ``prefix``
    (relative to ``/``; ``""`` for everything) to their restored copy at ``dest``, and
    return one outcome per kind. Paths absent from the restore are left alone; a link
    group member whose partners lie outside the prefix stays a plain file. Raise
    MetadataError if the metadata cannot be read, or with ``strict`` if anything could
    not be applied (after applying all that could)."""
    plan = formats.plan_apply(read_metadata(metadata_dir), os.fsencode(prefix.strip("/")))
    # the parent resolved, the last component not: a restored symlink is acted on itself
    where = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(dest))), dest.name)
    applier = _Applier(os.fsencode(where))
    applier.link_groups(plan.links)
    applier.restore_dir_times()
    applier.make_sparse(plan.sparse)
    applier.set_xattrs(plan.xattrs)
    applier.set_acls(plan.acls)
    applier.set_times(plan.times)
    report = applier.report(plan.outside_links)
    if strict and report.failed:
        failed = [outcome.line() for outcome in report.outcomes if outcome.failed]
        raise MetadataError("metadata not fully re-applied: " + "; ".join(failed),
                            "restore as root onto a file system with ACLs and xattrs, "
                            "or without --strict-metadata")
    return report
