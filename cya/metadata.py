"""Record the metadata duplicity loses before each backup; re-apply it after a restore.

``record`` walks the sources (never following a symlink, never entering a
``skip`` path nor one the config's ``exclude`` globs leave out of the backup)
and brings the metadata directory up to date; cya includes that directory in
the same duplicity backup, so a restore of any backup holds the metadata
exactly as of that backup. The files and their formats are described in
cya.core.metadata; ACLs and xattrs are the text ``getfacl``/``getfattr``
print, so ``setfacl --restore`` and ``setfattr --restore`` re-apply them
without cya.

It runs before every backup over every entry of the sources, so it does as
little as it can without ever recording less: one ``lstat`` per entry,
relative to its directory; the xattrs (ACLs included) read only for inodes
whose ctime changed since the last recording read them (``RecordCache``,
kept in cya's state, never in the backup); mtimes.txt left as it is and
only the day's changes appended to the small mtimes-changes.txt, so
duplicity skips the large file on most days and stores a short delta. Measured
on 100,000 files in benchmarks/metadata.py.

``apply`` re-applies what was recorded for a restored path, in an order that
keeps each step's work: re-link hard-link groups; punch holes back into
sparse files (a punch is a write, which drops file capabilities and, without
CAP_FSETID, setuid bits — so it comes before the xattrs, and the mode is put
back); set xattrs; set ACLs; set nanosecond mtimes last, each directory after
its contents. It never grows a file, never punches a hole over a byte that is
not zero, never replaces a file by a link to one whose content differs, and
never acts through a symlink. What cannot be applied is counted per kind.

Reading uses the standard library (``os.listxattr``/``os.getxattr``/``lstat``),
not the acl/attr tools: one walk serves all five files, honours ``skip`` and
``exclude`` (getfacl -R cannot leave out a sub-tree), reads only what changed,
and measured faster on 100,000 files (benchmarks/metadata.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import grp
import hashlib
import marshal
import os
import pwd
import re
import secrets
import stat
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cya.core import metadata as formats
from cya.core.metadata import (
    ACL_ACCESS,
    ACL_DEFAULT,
    FileAcl,
    FileTime,
    FileXattrs,
    FormatError,
    GlobExclusion,
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

{formats.HARDLINK_FILE}, {formats.SPARSE_FILE} and {formats.MTIME_FILE}
(then {formats.MTIME_CHANGES_FILE}, whose lines win) hold hard-link groups, holes of
sparse files and nanosecond mtimes; `cya restore` re-applies all of it. README.rst,
"Restoring without cya", has a recipe for them too.
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
except OSError:  # pragma: no cover - not Linux
    _libc = None
try:
    _fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    _fallocate.restype = ctypes.c_int
except AttributeError:  # pragma: no cover - not Linux
    _fallocate = None
try:
    _statfs = _libc.statfs
    _statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    _statfs.restype = ctypes.c_int
except AttributeError:  # pragma: no cover - not Linux
    _statfs = None


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
    xattr_reads: int = 0  # entries whose xattrs were read; the others' came from the cache
    excluded: int = 0  # entries left out by ``exclude`` (with everything below them)

    def summary(self) -> str:
        text = (f"metadata of {self.entries} entries: {self.acls} with ACLs, {self.xattrs} with "
                f"xattrs, {self.link_groups} hard-link groups ({self.link_names} names), "
                f"{self.sparse} sparse, {self.times} exact times; {self.seconds:.2f} s")
        if self.xattr_reads < self.entries:
            text += (f"; xattrs read for {self.xattr_reads}, the others unchanged since the "
                     "last backup")
        if self.excluded:
            text += f"; {self.excluded} excluded"
        if self.unreadable:
            text += f"; {self.unreadable} unreadable"
        return text


@dataclass
class _Scan:
    acls: list[FileAcl] = field(default_factory=list)
    xattrs: list[FileXattrs] = field(default_factory=list)
    inodes: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    sparse: list[SparseFile] = field(default_factory=list)
    # {directory relative to /: its lines}: mtimes.txt's blocks (``time_blocks``), in walk
    # order, each made as soon as its directory is read (no tuple per name is kept)
    time_blocks: dict[bytes, bytes] = field(default_factory=dict)
    # the lines of the sources themselves, per directory (``/`` itself is in its own block)
    root_times: dict[bytes, list[tuple[int, bytes]]] = field(default_factory=dict)
    times: int = 0  # names with a line in mtimes.txt
    entries: int = 0
    unreadable: int = 0
    xattr_reads: int = 0
    excluded: int = 0

    def timed(self, directory: bytes, group: list[tuple[int, bytes]]) -> None:
        """Add the lines of the names of ``directory`` found with an exact time."""
        self.times += len(group)
        merged = self.root_times.get(directory)
        if merged is not None:  # a directory holding a source (or ``/``, a source itself)
            merged.extend(group)
            self.time_blocks[directory] = formats.time_block(merged)
        else:
            self.time_blocks[directory] = formats.time_block(group)

    def timed_root(self, directory: bytes, mtime_ns: int, name: bytes) -> None:
        self.root_times.setdefault(directory, [])
        self.timed(directory, [(mtime_ns, name)])


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """The name getfacl prints for ``uid`` (and the file index records): the user's
    name, else the number."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
    return name if _SAFE_OWNER.fullmatch(name) else str(uid)


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
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


Attributes = tuple[tuple[bytes, bytes], ...]  # (xattr name, value), sorted by name


def _read_attributes(path: bytes) -> Attributes | None:
    """Every xattr of ``path`` (not following a symlink), ACLs included; () when the
    file system has none; None when they cannot be listed (vanished, no permission)."""
    try:
        listed = os.listxattr(path, follow_symlinks=False)
    except OSError as error:
        return () if error.errno in _UNSUPPORTED else None
    values = []
    for attribute in listed:
        try:
            value = os.getxattr(path, attribute, follow_symlinks=False)
        except OSError:  # removed meanwhile, or unreadable: leave it out
            continue
        values.append((os.fsencode(attribute), value))
    return tuple(sorted(values))


def _note_attributes(name: bytes, info: os.stat_result, attributes: Attributes,
                     scan: _Scan) -> None:
    """Record the xattrs of the entry ``name``: its ACLs apart, the other xattrs."""
    access = default = None
    values = []
    for key, value in attributes:
        if key == ACL_ACCESS:
            access = value
        elif key == ACL_DEFAULT:
            default = value
        else:
            values.append((key, value))
    if values:
        scan.xattrs.append(FileXattrs(name, tuple(values)))
    if access is not None or default is not None:
        try:
            acl = formats.file_acl(
                name, info.st_mode, user_name(info.st_uid), group_name(info.st_gid),
                formats.decode_acl(access) if access else (),
                formats.decode_acl(default) if default else (), user_name, group_name)
        except FormatError:
            scan.unreadable += 1
            return
        if acl is not None:
            scan.acls.append(acl)


# ---------------------------------------------------------------------------
# The cache of what the last recording saw: which inodes need their xattrs read
# again, and what mtimes.txt holds

# Linux changes an inode's ctime whenever its xattrs (ACLs included) change, on every
# file system; these are the ones whose ctime nothing else can set or keep back.
_CTIME_FILE_SYSTEMS = {0xEF53: "ext2/3/4", 0x58465342: "xfs", 0x9123683E: "btrfs",
                       0x01021994: "tmpfs", 0xF2F52010: "f2fs"}
_CACHE_MAGIC = b"cya metadata cache 2 marshal %d\n" % marshal.version
_RACY_NS = 2_000_000_000  # ctimes this close to a reading may change again unseen
_CACHE_DAYS = 30  # then every xattr is read once more, whatever the ctimes say


def _file_system_type(path: bytes) -> int | None:
    """statfs(2)'s f_type of ``path`` (its first field), or None when it cannot say."""
    if _statfs is None:
        return None
    buffer = ctypes.create_string_buffer(512)
    if _statfs(path, buffer) != 0:
        return None
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()  # SHA-256: the fastest here (CPU instructions)


def _times_pair(times: bytes, changes: bytes | None) -> bytes:
    """``mtimes.txt`` and ``mtimes-changes.txt`` as one text, to take their digest."""
    return times + b"\0" + (changes or b"")


@dataclass(frozen=True)
class _TimesState:
    """What ``mtimes.txt`` and ``mtimes-changes.txt`` held after the last recording: the
    digest of the two, the size of ``mtimes.txt``, the ``time_blocks`` they stand for."""

    digest: bytes
    base: int
    blocks: dict[bytes, bytes]


class RecordCache:
    """What the last recording saw, so that the next one does less: the xattrs (ACLs
    included) it read of each inode, and the content of ``mtimes.txt``.

    xattrs: an inode whose device, inode number and ctime (to the nanosecond) are
    the same as when it was read still has the same xattrs, because setting or
    removing an xattr or an ACL changes the ctime and nothing can set a ctime back.
    The cache only decides what is read again and errs towards reading:

    * only on file systems known to keep ctime so (``_CTIME_FILE_SYSTEMS``, told by
      statfs per device, identified by device number and f_fsid); on any other
      (sshfs, NFS, FUSE...) every entry is read every time;
    * an inode whose ctime lies within 2 s of the reading is not kept (a change in
      the same clock tick as the reading would leave the ctime as it was);
    * a deleted file's inode number given to a new file comes with the new file's
      ctime, later than any kept one, so it is read;
    * a cache that is damaged, of another format or written in the future (the clock
      went back) is dropped, and its xattrs after 30 days: everything is read.

    mtimes.txt: a recording appends only what changed to it when the file still has
    the digest the cache noted (so the file, whatever happened to it, holds what the
    cache says), else writes it afresh.

    ``path`` is cya's state (``TREE/.cya/metadata-cache``), never inside what the
    backup holds; deleting it only makes the next recording read and write everything.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.started = time.time_ns()  # the file system's clock, not the backup's time
        self.racy = self.started - _RACY_NS
        self.created = self.started
        # {(device, f_fsid): {directory inode: {inode: ctime, or (ctime, attributes)}}};
        # one small dict per directory: the lookups of one directory stay close in memory
        # (a directory's inode says nothing about its entries: each is checked itself)
        self._old: dict[tuple[int, int], dict[int | None, dict]] = {}
        self._new: dict[tuple[int, int], dict[int | None, dict]] = {}
        self._devices: dict[int, tuple[dict | None, dict | None]] = {}
        self.times: _TimesState | None = None  # read, then replaced by what is written
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError:
            return
        head = len(_CACHE_MAGIC)
        view = memoryview(data)  # the payload is megabytes: read in place, not copied
        digest, payload = data[head:head + 32], view[head + 32:]
        if not data.startswith(_CACHE_MAGIC) or _digest(payload) != digest:
            return
        try:
            created, scanned, devices, times = marshal.loads(payload)
        except (ValueError, EOFError, TypeError):
            return
        if not isinstance(created, int) or not isinstance(scanned, int) \
                or not created <= scanned <= self.started:
            return
        if isinstance(times, tuple) and len(times) == 3 and isinstance(times[0], bytes) \
                and isinstance(times[1], int) and isinstance(times[2], dict) \
                and all(type(key) is bytes and type(value) is bytes
                        for key, value in times[2].items()):
            self.times = _TimesState(*times)
        if self.started - created > _CACHE_DAYS * 86_400 * 10**9:
            return
        if isinstance(devices, dict) and all(
                isinstance(directories, dict)
                and all(isinstance(inodes, dict) for inodes in directories.values())
                for directories in devices.values()):
            self.created, self._old = created, devices

    def directory(self, dev: int, ino: int | None, path: bytes
                  ) -> tuple[dict | None, dict | None]:
        """For the entries of the directory ``path`` (device ``dev``, inode ``ino``; None for
        the sources themselves) that lie on its device: what the last recording read of
        them {inode: ctime, or (ctime, attributes)}, and where this one notes what it
        reads; (None, None) where ctime cannot be trusted."""
        old, new = self._device(dev, path)
        if old is None or new is None:
            return None, None
        # this recording's notes are the last one's, updated in place (each inode is looked
        # up before it is noted, once): an unchanged inode costs one lookup and the cache
        # is held once, not twice; an inode gone leaves an entry no new inode can match
        # (its ctime would differ), dropped when the cache is
        notes = new.get(ino)
        if notes is None:
            notes = new[ino] = old.get(ino) or {}
        return notes, notes

    def _device(self, dev: int, directory: bytes) -> tuple[dict | None, dict | None]:
        found = self._devices.get(dev)
        if found is None:
            found = (None, None)
            if self.path is not None and _file_system_type(directory) in _CTIME_FILE_SYSTEMS:
                try:
                    key = (dev, os.statvfs(directory).f_fsid)
                except OSError:
                    key = None
                if key is not None:
                    found = (self._old.get(key, {}), self._new.setdefault(key, {}))
            self._devices[dev] = found
        return found

    def times_files(self, old: bytes | None, old_changes: bytes | None,
                    blocks: dict[bytes, bytes]) -> tuple[bytes, bytes]:
        """The new content of ``mtimes.txt`` and ``mtimes-changes.txt`` for ``blocks``
        (``time_blocks``), given what they hold now (None: nothing): ``mtimes.txt`` kept
        and what changed since the last recording appended to the changes file, when
        both are what the cache noted and the changes stay under a quarter of
        ``mtimes.txt``; else ``mtimes.txt`` afresh and no changes. (Appended, so
        duplicity's delta of the changes file is the day's lines alone.)"""
        if old is not None and self.times is not None and \
                _digest(_times_pair(old, old_changes)) == self.times.digest:
            changes = (old_changes or b"") + formats.time_changes(self.times.blocks, blocks)
            if len(changes) <= len(old) // 4:
                return old, changes
        return formats.format_time_blocks(blocks), b""

    def save(self) -> None:
        """Replace the cache file by what this recording saw (a crash leaves the old one
        or a damaged one, which is dropped). Raise OSError if it cannot be written."""
        if self.path is None:
            return
        # what the last recording read is no longer needed; dropped first, the objects it
        # shares with this one's notes are single references again, which marshal writes
        # without keeping a table of them
        self._old, self._devices = {}, {}
        times = None if self.times is None else \
            (self.times.digest, self.times.base, self.times.blocks)
        payload = marshal.dumps((self.created, self.started, self._new, times))
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "wb", opener=lambda p, flags: os.open(p, flags, 0o600)) as handle:
            handle.write(_CACHE_MAGIC + _digest(payload))
            handle.write(payload)
        os.replace(temporary, self.path)


def _attributes_of(path: bytes, name: bytes, info: os.stat_result, old: dict | None,
                   new: dict | None, racy: int, scan: _Scan) -> None:
    """Record the xattrs of one entry: from the cache when its inode's ctime is the one
    read last time, else read; note them for the next time."""
    ino, ctime = info.st_ino, info.st_ctime_ns
    known = old.get(ino) if old is not None else None
    if known == ctime:
        attributes: Attributes | None = ()
    elif type(known) is tuple and known[0] == ctime:
        attributes = known[1]
    else:
        scan.xattr_reads += 1
        attributes = _read_attributes(path)
        if attributes is None:
            scan.unreadable += 1
            return
    if new is not None:
        if ctime < racy:
            new[ino] = (ctime, attributes) if attributes else ctime
        else:
            new.pop(ino, None)
    if attributes:
        _note_attributes(name, info, attributes, scan)


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


Exclude = Callable[[bytes, bool], bool]  # (absolute path, is a directory) -> left out


def _scan(sources: Sequence[Path], skip: Sequence[Path], read_xattrs: bool = True,
          exclude: Exclude | None = None, cache: RecordCache | None = None) -> _Scan:
    """Walk the sources depth first, names sorted, so that two walks of an unchanged
    source write the same files (duplicity then stores nearly nothing for them).

    The loop over the entries of a directory runs once per entry of every source
    before each backup: it is kept tight (one lstat relative to the directory, the
    xattrs only when the cache cannot vouch for them, locals, no call it can avoid)."""
    skipped = {os.fsencode(os.path.abspath(s)) for s in skip}
    skip_in: dict[bytes, set[bytes]] = {}  # directory -> names in it never entered
    for path in skipped:
        parent, _, name = path.rpartition(b"/")
        skip_in.setdefault(parent or b"/", set()).add(name)
    cache = cache if cache is not None else RecordCache(None)
    racy = cache.racy
    below: Callable[[bytes, bytes, bool], bool] | None = None
    if isinstance(exclude, GlobExclusion):
        below = exclude.below if exclude else None
    elif exclude is not None:
        below = lambda prefix, name, is_dir: exclude(prefix + name, is_dir)  # noqa: E731
    scan = _Scan()
    inodes = scan.inodes
    is_dir, is_file, is_link = stat.S_ISDIR, stat.S_ISREG, stat.S_ISLNK
    lstat, listdir = os.lstat, os.listdir
    opening = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    second = 1_000_000_000
    for root in _roots(sources, skipped):
        try:
            info = lstat(root)
        except OSError:
            scan.unreadable += 1
            continue
        if exclude is not None and exclude(root, is_dir(info.st_mode)):
            scan.excluded += 1
            continue
        # the root itself: one line in its parent directory's group
        parent, _, base = root[1:].rpartition(b"/")
        name = root[1:] or b"."
        scan.entries += 1
        if read_xattrs:
            old, new = cache.directory(info.st_dev, None, root)
            _attributes_of(root, name, info, old, new, racy, scan)
        if info.st_mtime_ns % second or is_link(info.st_mode):
            scan.timed_root(parent, info.st_mtime_ns, base or b".")
        if is_file(info.st_mode):
            if info.st_nlink > 1:
                inodes.setdefault((info.st_dev, info.st_ino), []).append(name)
            if info.st_blocks * 512 < info.st_size:
                _sparse(root, name, info, scan)
        if not is_dir(info.st_mode):
            continue
        stack = [(root, root[1:], info.st_dev, info.st_ino)]
        while stack:
            directory, relative, device, directory_ino = stack.pop()
            try:
                fd = os.open(directory, opening)
            except OSError:
                scan.unreadable += 1
                continue
            try:
                names = listdir(directory)
            except OSError:
                os.close(fd)
                scan.unreadable += 1
                continue
            try:
                prefix = directory.rstrip(b"/") + b"/"  # absolute, for what needs a path
                inside = relative + b"/" if relative else b""  # relative to /, for names
                old, new = (cache.directory(device, directory_ino, directory) if read_xattrs
                            else (None, None))
                known = old.get if old is not None else None
                never = skip_in.get(directory)
                group: list[tuple[int, bytes]] = []
                timed = group.append
                subdirectories = []
                left_out = 0
                names.sort()
                for name in names:
                    if never is not None and name in never:
                        left_out += 1
                        continue
                    try:
                        info = lstat(name, dir_fd=fd)
                    except OSError:
                        scan.unreadable += 1
                        left_out += 1
                        continue
                    mode = info.st_mode
                    if below is not None and below(prefix, name, is_dir(mode)):
                        scan.excluded += 1
                        left_out += 1
                        continue
                    if known is not None:
                        # unchanged since read, and without xattrs: nothing to do
                        if known(info.st_ino) != info.st_ctime_ns or info.st_dev != device:
                            same = info.st_dev == device  # else a mount point: read always
                            _attributes_of(prefix + name, inside + name, info,
                                           old if same else None, new if same else None,
                                           racy, scan)
                    elif read_xattrs:
                        _attributes_of(prefix + name, inside + name, info, None, None, racy,
                                       scan)
                    mtime_ns = info.st_mtime_ns
                    if mtime_ns % second or is_link(mode):
                        timed((mtime_ns, name))
                    if is_file(mode):
                        if info.st_nlink > 1:
                            inodes.setdefault((info.st_dev, info.st_ino), []).append(
                                inside + name)
                        if info.st_blocks * 512 < info.st_size:
                            _sparse(prefix + name, inside + name, info, scan)
                    elif is_dir(mode):
                        subdirectories.append((prefix + name, inside + name, info.st_dev,
                                               info.st_ino))
                scan.entries += len(names) - left_out
                if group:
                    scan.timed(relative, group)
                stack.extend(reversed(subdirectories))
            finally:
                os.close(fd)
    return scan


def _sparse(path: bytes, name: bytes, info: os.stat_result, scan: _Scan) -> None:
    """Record the data extents of a file that has fewer blocks than its size says,
    if it has holes (a compressed or inline file has none)."""
    extents = _data_extents(path, info.st_size)
    if extents is not None and formats.holes(info.st_size, extents):
        scan.sparse.append(SparseFile(name, info.st_size, extents))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _write(path: Path, data: bytes, old: bytes | None = None) -> int:
    """Write ``data`` durably unless the file already holds it (``old``: what it holds,
    when known); return the bytes written.

    duplicity takes a file whose size and mtime (to the second) are as before for
    unchanged, so a file rewritten with as many bytes within the second of the last
    write would not reach the backup: its mtime is then moved past the old one's
    second."""
    if (old if old is not None else _read(path)) == data:
        return 0
    try:
        before = os.stat(path).st_mtime_ns // 10**9
    except FileNotFoundError:
        before = None
    atomic_write(path, data, 0o600)
    if before is not None and os.stat(path).st_mtime_ns // 10**9 <= before:
        later = (before + 1) * 10**9
        os.utime(path, ns=(later, later))
    return len(data)


def exclusion(patterns: Sequence[str]) -> GlobExclusion:
    """The test ``record(exclude=...)`` takes for the config's ``exclude`` globs: what
    duplicity leaves out when cya passes them as ``--exclude`` (file names decoded as
    duplicity decodes them)."""
    return GlobExclusion(patterns, os.fsdecode, os.fsencode)


def record(sources: Sequence[Path], out_dir: Path, skip: Sequence[Path] = (), *,
           exclude: Exclude | None = None, cache: Path | None = None) -> RecordStats:
    """Record the metadata of every entry at or below ``sources`` into ``out_dir``, replacing
    what it held, and return counts. Never follows a symlink, never enters a ``skip``
    path (the tree, the cache). ``exclude`` (``exclusion(settings.exclude)``, or any
    test of an absolute path and whether it is a directory) leaves out what the backup
    leaves out: neither walked nor recorded. ``cache`` is a file where what was read is
    kept for the next recording, which then reads the xattrs only of inodes whose ctime
    changed and appends only what changed to mtimes-changes.txt (see RecordCache);
    without it, every entry's xattrs are read and mtimes.txt is written afresh. Entries
    that vanish or cannot be read while walking are counted, not fatal; raise OSError
    only if ``out_dir`` cannot be written."""
    started = time.perf_counter()
    seen = RecordCache(cache)
    scan = _scan(sources, skip, exclude=exclude, cache=seen)
    groups = [LinkGroup(tuple(names)) for names in scan.inodes.values() if len(names) > 1]
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = 0
    for name, data in ((formats.ACL_FILE, formats.format_acls(scan.acls)),
                       (formats.XATTR_FILE, formats.format_xattrs(scan.xattrs)),
                       (formats.HARDLINK_FILE, formats.format_links(groups)),
                       (formats.SPARSE_FILE, formats.format_sparse(scan.sparse)),
                       (README_FILE, README)):
        written += _write(out_dir / name, data)
    old = _read(out_dir / formats.MTIME_FILE)
    old_changes = _read(out_dir / formats.MTIME_CHANGES_FILE)
    blocks = scan.time_blocks
    data, changes = seen.times_files(old, old_changes, blocks)
    written += _write(out_dir / formats.MTIME_FILE, data, old)
    written += _write(out_dir / formats.MTIME_CHANGES_FILE, changes, old_changes)
    if cache is not None:
        seen.times = _TimesState(_digest(_times_pair(data, changes)), len(data), blocks)
        try:
            seen.save()
        except OSError:
            pass  # the cache only saves work: the next recording does what it cannot vouch for
    return RecordStats(scan.entries, len(scan.acls), len(scan.xattrs), len(groups),
                       sum(len(g.names) for g in groups), len(scan.sparse),
                       scan.times, scan.unreadable,
                       written, time.perf_counter() - started, scan.xattr_reads, scan.excluded)


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
