"""Small durable-write helpers and the named crash points.

Write once, never modify: a file is written under a temporary name, fsynced,
renamed into place, and its directory fsynced (STYLE.md "Safety habits").
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

CRASH_ENV = "CYA_CRASH_AT"
CRASH_EXIT = 137


def crash_point(name: str) -> None:
    """Die here, at once and for real, if ``$CYA_CRASH_AT`` names this point.

    Tests use this to kill a real process at each named point of a multi-step
    change (``os._exit`` skips every cleanup, like ``kill -9``).
    """
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never a mix."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_dir(path.parent)


def make_private_dir(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents, each new one 0700; return those created.

    A directory that exists keeps its mode: cya never changes the mode of a directory
    it did not make (``/etc`` made 0700 would lock the machine up).
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is cut by the umask
        created.append(directory)
    return created


def link_if_missing(source: Path, target: Path) -> bool:
    """Hardlink ``source`` as ``target`` unless ``target`` already is that file.

    Return True if a link was made. Raise FileExistsError if ``target`` is a
    different file: two files of one name in a chain would be a corruption.
    """
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        if os.path.samefile(source, target):
            return False
        raise


def remove_tree(path: Path) -> None:
    """Delete a file or directory tree; a symlink is removed, never followed. An entry
    that vanishes meanwhile is gone, as asked: a gpg agent told to stop removes its
    sockets from its home while that home is being removed."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        # never follows a symlink inside; Python 3.12 renamed the error hook
        hook = "onexc" if sys.version_info >= (3, 12) else "onerror"
        shutil.rmtree(path, **{hook: _gone_is_removed})


def _gone_is_removed(function, name: str, error) -> None:
    """rmtree's hook: a FileNotFoundError is a removal done; anything else is raised."""
    error = error[1] if isinstance(error, tuple) else error  # onerror gives exc_info
    if not isinstance(error, FileNotFoundError):
        raise error


MIN_FREE = 1 << 20  # below this a write of cya's (journal, catalog row, volume) will fail


def require_space(path: Path, doing: str) -> None:
    """Raise CyaError ("disk full", naming the file system) when the file system holding
    ``path`` has less than MIN_FREE bytes free for this user: what a dry run says
    instead of promising a run that would fail."""
    from cya.core.units import size
    from cya.errors import CyaError, mount_point

    info = os.statvfs(path)
    free = info.f_bavail * info.f_frsize
    if free < MIN_FREE:
        raise CyaError(f"disk full: {size(free)} free on the file system at "
                       f"{mount_point(path)}, so {doing} would fail",
                       "free some space there (cya trim frees what the tree no longer keeps)")
