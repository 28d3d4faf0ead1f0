"""The on-disk tree: level directories, cya's state, and publishing a backup.

Layout (DESIGN.md 1)::

    TREE/                      0700
      .cya/                    cya's state: lock, catalog.sqlite, journal.json,
                               staging/ (runs in progress), trash/ (levels being deleted)
      2000/files/              century chain
      2000/2010/files/         decade chain
      ...
      2000/2010/2012/2012-12/2012-12-02/files/   week chain (the leaf)

Invariants kept here:

* A level directory becomes visible only complete: new levels are built under
  ``.cya/staging`` and renamed into place in one ``rename``.
* A backup's manifest is linked into an existing level only after its volumes
  and signatures, so a level never shows a chain link whose files are missing.
* Every file is fsynced in staging before any link to it is published, and
  every directory that gained a link is fsynced.
* Publishing is idempotent: after a crash at any point it can run again from
  the journal and ends with the same tree.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cya.core.names import manifest_last, parse_name
from cya.core.placement import Placement
from cya.core.timescale import Level, parse_level
from cya.core.treeview import FileInfo, TreeView
from cya.errors import TreeError
from cya.fsutil import (
    atomic_write,
    crash_point,
    fsync_dir,
    fsync_file,
    link_if_missing,
    make_private_dir,
    remove_tree,
)

STATE = ".cya"
FILES = "files"
INDEX = "index"  # in a backup's staging run: its file index delta


class Tree:
    def __init__(self, root: Path):
        self.root = root

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def lock_path(self) -> Path:
        return self.state / "lock"

    @property
    def catalog_path(self) -> Path:
        return self.state / "catalog.sqlite"

    @property
    def journal_path(self) -> Path:
        return self.state / "journal.json"

    @property
    def staging(self) -> Path:
        return self.state / "staging"

    @property
    def trash(self) -> Path:
        return self.state / "trash"

    @property
    def metadata(self) -> Path:
        """What duplicity loses (ACLs, xattrs, hard links, holes, exact times), recorded
        before each backup and included in it (cya/metadata.py)."""
        return self.state / "metadata"

    @property
    def metadata_cache(self) -> Path:
        """What the last metadata recording read (cya/metadata.RecordCache): kept in the
        tree's state, never in a backup; losing it only makes the next recording read
        everything."""
        return self.state / "metadata-cache"

    def level_dir(self, level: Level) -> Path:
        return self.root.joinpath(*level.names)

    def files_dir(self, level: Level) -> Path:
        return self.level_dir(level) / FILES

    def create(self) -> None:
        """Make the tree root (0700, if cya makes it) and its state directories."""
        make_private_dir(self.root)
        for path in (self.state, self.staging, self.trash):
            make_private_dir(path)

    def has_levels(self) -> bool:
        """Whether the root holds level directories (backups), with or without cya's state."""
        try:
            return any(parse_level((entry.name,)) is not None and entry.is_dir()
                       for entry in os.scandir(self.root))
        except OSError:
            return False

    def require(self) -> None:
        """Raise TreeError unless this is a tree made by ``cya init`` with its state."""
        if self.state.is_dir():
            return
        if self.has_levels():
            raise TreeError(f"the tree {self.root} holds backups but its state "
                            f"({self.state}) is gone",
                            "rebuild it from the tree: cya init --adopt")
        if self.root.exists():
            raise TreeError(f"no cya tree at {self.root}",
                            "run: cya init --source DIR --tree DIR (or fix tree in the config)")
        raise TreeError(f"the tree {self.root} does not exist",
                        "is its disk mounted? (or run: cya init --source DIR --tree DIR)")

    def identity(self, tree_id: str) -> str:
        """What names this tree's duplicity cache: the catalog's tree id and where the tree
        is on disk, so a copy (``cp -a``) of a tree never shares the original's cache."""
        info = os.stat(self.state)
        place = f"{os.path.realpath(self.root)}\0{info.st_dev}\0{info.st_ino}"
        digest = hashlib.sha256(place.encode("utf-8", "surrogateescape")).hexdigest()
        return f"{tree_id}-{digest[:8]}"

    def scan(self) -> TreeView:
        """List every level and the duplicity files in its ``files/`` (names and lstat only).

        Any date is a week name here, whatever ``week_start`` says now: a tree made with
        Sunday weeks and continued with Monday weeks holds both, and every scan must see
        all of them."""
        found: dict[Level, frozenset[str]] = {}
        info: dict[Level, dict[str, FileInfo]] = {}

        def walk(directory: Path, names: tuple[str, ...]) -> None:
            try:
                with os.scandir(directory) as entries:
                    listed = list(entries)
            except FileNotFoundError:
                return  # trimmed away while an unlocked reader looked
            for entry in listed:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.name == FILES and names:
                    level = Level(names)
                    try:
                        info[level] = _files_info(entry.path)
                    except FileNotFoundError:
                        continue
                    found[level] = frozenset(info[level])
                    continue
                child = names + (entry.name,)
                if parse_level(child) is not None:
                    walk(Path(entry.path), child)

        walk(self.root, ())
        return TreeView(found, info)

    def duplicity_files(self, level: Level) -> list[str]:
        directory = self.files_dir(level)
        if not directory.is_dir():
            return []
        return sorted(n for n in os.listdir(directory) if parse_name(n))


def _files_info(directory: str) -> dict[str, FileInfo]:
    """The duplicity files of one ``files/`` directory with their size, inode and links."""
    found = {}
    with os.scandir(directory) as files:
        for item in files:
            if parse_name(item.name) and item.is_file(follow_symlinks=False):
                try:
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                found[item.name] = FileInfo(stat.st_size, stat.st_ino, stat.st_nlink)
    return found


@dataclass
class BackupJournal:
    """What an interrupted backup needs to be finished or undone (``.cya/journal.json``).

    phase "started": duplicity may not have finished; the run is undone.
    phase "captured": duplicity finished and its files are on disk in staging;
    the run is finished by publishing again.
    """

    time: str  # duplicity time stamp of the backup
    leaf: str
    base: str | None
    new_levels: list[str]
    staging: str  # run directory name under .cya/staging
    cache_name: str
    started_at: str
    phase: str = "started"
    seeded: list[str] | None = None
    parent: str | None = None  # the backup duplicity diffed against
    new: list[str] | None = None
    statistics: dict | None = None
    unreadable: list[str] | None = None
    digests: dict[str, list] | None = None  # new file -> [size, SHA-256]
    sources: list[list[str]] | None = None  # [as configured, as backed up]
    metadata: str | None = None  # the metadata dir included in the backup (absolute)

    def save(self, tree: Tree) -> None:
        atomic_write(tree.journal_path, json.dumps(asdict(self), indent=1).encode())

    @staticmethod
    def load(tree: Tree) -> BackupJournal | None:
        """The journal of an interrupted run, or None. Raise TreeError if it is damaged
        (the interrupted backup cannot be finished then; moving the journal away drops
        it, and nothing of it was published before "captured")."""
        try:
            data = json.loads(tree.journal_path.read_text(encoding="utf-8"))
            return BackupJournal(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, OSError) as error:
            raise TreeError(f"the journal of an interrupted backup ({tree.journal_path}) is "
                            f"damaged: {str(error).splitlines()[0]}",
                            f"move it away (mv {tree.journal_path} {tree.journal_path}.damaged)"
                            " and run again; the interrupted backup is then dropped") from None

    def clear(self, tree: Tree) -> None:
        tree.journal_path.unlink(missing_ok=True)
        fsync_dir(tree.state)


def level_of(relpath: str | None) -> Level | None:
    return Level(tuple(relpath.split("/"))) if relpath else None


def run_dir(tree: Tree, journal: BackupJournal) -> Path:
    return tree.staging / journal.staging


def seed(tree: Tree, base: Level | None, target: Path) -> list[str]:
    """Hardlink the base level's duplicity files into ``target``; return their names."""
    make_private_dir(target)
    names = tree.duplicity_files(base) if base is not None else []
    for name in names:
        link_if_missing(tree.files_dir(base) / name, target / name)
    fsync_dir(target)
    return names


def capture(files: Path, seeded: list[str]) -> list[str]:
    """Return the files duplicity added to ``files``, each fsynced to disk."""
    seeded_set = set(seeded)
    new = sorted(n for n in os.listdir(files) if n not in seeded_set and parse_name(n))
    for name in new:
        fsync_file(files / name)
    fsync_dir(files)
    return new


def publish(tree: Tree, placement: Placement, files: Path, seeded: list[str],
            new: list[str], build: Path) -> None:
    """Make the captured backup part of every level in ``placement.link_into``.

    New levels are built under ``build`` and renamed into place; then the new
    files are linked into the base, manifest last. Safe to run again after a
    crash anywhere inside it.
    """
    top = placement.top_new_level
    if top is not None and not tree.level_dir(top).exists():
        remove_tree(build)  # a build interrupted by a crash
        depth = len(top.names) - 1
        for level in placement.new_levels:
            level_files = build.joinpath(*level.names[depth:], FILES)
            level_files.mkdir(parents=True, mode=0o700)
            for name in seeded + manifest_last(new):
                os.link(files / name, level_files / name)
            fsync_dir(level_files)
        for level in reversed(placement.new_levels):
            fsync_dir(build.joinpath(*level.names[depth:]))
        fsync_dir(build)
        crash_point("before-new-levels")
        parent = tree.level_dir(top.parent) if top.parent is not None else tree.root
        os.rename(build / top.name, tree.level_dir(top))
        fsync_dir(parent)
        crash_point("after-new-levels")
    if placement.base is not None:
        base_files = tree.files_dir(placement.base)
        if not base_files.is_dir():
            raise TreeError(f"level {placement.base} vanished while a backup was being published",
                            "run the backup again")
        for name in manifest_last(new):
            if parse_name(name).role == "manifest":
                fsync_dir(base_files)
                crash_point("before-base-manifest")
            link_if_missing(files / name, base_files / name)
        fsync_dir(base_files)


def bytes_freed(tree: Tree, levels: list[Level]) -> int:
    """Disk bytes that deleting these level directories gives back.

    A file counts only when every one of its links lies inside them (by inode and
    link count): a duplicity file still linked from a kept level frees nothing.
    Directories count too, so the figure matches the drop in ``du``.
    """
    links_inside: dict[int, int] = {}
    sizes: dict[int, tuple[int, int]] = {}
    total = 0
    for level in levels:
        top = tree.level_dir(level)
        for root, dirs, files in os.walk(top, followlinks=False):
            total += os.lstat(root).st_blocks * 512
            for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                info = os.lstat(os.path.join(root, name))
                links_inside[info.st_ino] = links_inside.get(info.st_ino, 0) + 1
                sizes[info.st_ino] = (info.st_nlink, info.st_blocks * 512)
    for inode, inside in links_inside.items():
        nlink, size = sizes[inode]
        if inside >= nlink:
            total += size
    return total


def move_to_trash(tree: Tree, level: Level) -> None:
    """Take a level out of the tree in one rename; ``empty_trash`` removes it later."""
    source = tree.level_dir(level)
    target = tree.trash / f"{level.relpath.replace('/', '_')}.{os.getpid()}.{os.urandom(4).hex()}"
    os.rename(source, target)
    fsync_dir(source.parent)
    fsync_dir(tree.trash)


def empty_trash(tree: Tree) -> int:
    """Remove what earlier trims moved to the trash; return how many entries."""
    entries = list(tree.trash.iterdir()) if tree.trash.is_dir() else []
    for entry in entries:
        remove_tree(entry)
    return len(entries)
