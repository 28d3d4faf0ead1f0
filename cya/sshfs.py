"""Remote sources (``[user@]host:/path``) mounted read-only with sshfs for the length of a run.

``mounted(sources, ssh_options)`` mounts each remote source under the private mount base
and yields ``MountedSources``: for each source that mounted, the local path to back up;
for each that did not, why (a ``RemoteUnavailable`` naming the host) — one dead host
never stops the others. Everything is unmounted when the ``with`` block ends, by an
exception too.

Invariants:

* A source's mount point is ``<mount base>/<core.remote.mount_name(source)>``, the same
  in every run: duplicity records paths, and a new path would look like a new source
  (a full backup of it, and its old files "deleted"). So the base is cya's state dir
  (``$XDG_STATE_HOME/cya/mnt``, else ``~/.local/state/cya/mnt``), which is the same for
  cron and for a login shell — unlike ``$XDG_RUNTIME_DIR`` — and not a cache dir, which
  configs commonly exclude (``**/.cache``). The base and every mount point are 0700.
* Mounts are read-only (``-o ro``): a backup can never change a remote file.
* While a run uses a mount it holds an ``fcntl.flock`` on ``<base>/<name>.lock`` (its
  pid written inside). The kernel drops the lock when the run dies (``kill -9``
  included), so a later run tells a dead run's mount (lock free: unmounted as stale)
  from a live run's (locked: never touched; that source is reported busy). Mounts are
  found in ``/proc/self/mountinfo``.
* A mount point exists only while mounted: a source that did not mount has no
  directory, so nothing can back up an empty directory in its place.

ssh never prompts and never hangs: ``BatchMode=yes`` always (first, so it wins), then
the user's ``ssh_options``, then defaults the user may override (``ConnectTimeout=10``,
``ServerAliveInterval=15``, ``ServerAliveCountMax=4``); each command also runs within a
timeout. Before mounting, one plain ``ssh -s <login> sftp`` checks the connection: sshfs
sends ssh's own error message to /dev/null, and this is what names the reason
(connection refused, no route, permission denied, host key changed).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from cya.core.remote import RemoteSource, local_name, mount_name, remote_name
from cya.errors import CommandFailed, RemoteUnavailable

if TYPE_CHECKING:
    from cya.execute import Completed

log = logging.getLogger("cya")

ALWAYS = ("BatchMode=yes",)
DEFAULTS = ("ConnectTimeout=10", "ServerAliveInterval=15", "ServerAliveCountMax=4")
UNMOUNT_SECONDS = 30.0


@dataclass(frozen=True)
class Mount:
    source: RemoteSource
    path: Path  # the local mount point: back this up


@dataclass(frozen=True)
class MountFailure:
    source: RemoteSource
    error: RemoteUnavailable


@dataclass(frozen=True)
class MountedSources:
    """What ``mounted`` made of the remote sources."""

    mounts: tuple[Mount, ...] = ()
    failed: tuple[MountFailure, ...] = ()
    base: Path | None = None  # the mount base they are under

    @property
    def paths(self) -> tuple[Path, ...]:
        """The local paths to back up, one per mounted source."""
        return tuple(mount.path for mount in self.mounts)

    @property
    def mapping(self) -> dict[str, str]:
        """``{mount point: "user@host:/path"}`` for the mounted sources: what
        ``RemoteNames.of`` computes from the config alone, for browsing and restores."""
        return {str(mount.path): mount.source.spelling for mount in self.mounts}

    def foreign(self) -> list[Path]:
        """What else is in the mount base — other live runs' mounts, lock files — for the
        backup to exclude when a local source holds the base (``/root`` holds
        ``/root/.local/state/cya/mnt``)."""
        if self.base is None or not self.base.is_dir():
            return []
        own = set(self.paths)
        return sorted(path for path in self.base.iterdir() if path not in own)

    def warnings(self) -> list[str]:
        """One line per source that was not mounted (and so is not in the backup)."""
        return [failure.error.one_line() for failure in self.failed]


@dataclass(frozen=True)
class RemoteNames:
    """How browsing and restoring spell the paths of remote sources: a backup holds
    ``<mount base>/<mount name>/x``, the user reads and writes ``user@host:/path/x``."""

    mapping: dict[str, str]  # {mount point: "user@host:/path"}

    @classmethod
    def of(cls, sources: Sequence[RemoteSource], base: Path | None = None) -> RemoteNames:
        """Where a backup mounts ``sources`` (the mount points are the same in every
        run), without mounting anything."""
        if not sources:
            return cls({})
        root = Path(os.path.realpath(base or mount_base()))
        return cls({str(root / mount_name(source)): source.spelling for source in sources})

    def shown(self, path: str) -> str:
        """An absolute path as shown: under a mount point, ``user@host:/path/...``."""
        return remote_name(path, self.mapping) if self.mapping else path

    def entry_json(self, entry) -> dict:
        """``Entry.as_json`` with the path as shown."""
        found = entry.as_json()
        if self.mapping:
            found["path"] = self.shown(found["path"])
        return found

    def local(self, text: str) -> str:
        """A path the user gave: ``user@host:/path/...`` of a configured source becomes the
        path in the backup; anything else is returned unchanged."""
        if not self.mapping or text.startswith("/"):
            return text
        return local_name(text, self.mapping) or text


def mount_base() -> Path:
    """Where remote sources are mounted: ``$XDG_STATE_HOME/cya/mnt`` (see the module doc)."""
    return Path(platformdirs.user_state_dir("cya")) / "mnt"


@contextmanager
def mounted(sources: Sequence[RemoteSource], ssh_options: Sequence[str] = (), *,
            base: Path | None = None, ssh_config: str | None = None
            ) -> Iterator[MountedSources]:
    """Mount every source read-only; yield which mounted and which failed; unmount all.

    ``ssh_config`` is given to ssh as ``-F`` (None: ssh reads ``~/.ssh/config`` as usual).
    Stale mounts of dead runs under the base are unmounted first. Never raises for one
    source; raises OSError only if the mount base itself cannot be made.
    """
    base = _private_base(base or mount_base())
    clean_stale(base)
    held: list[_Held] = []
    failed: list[MountFailure] = []
    try:
        for source in dict.fromkeys(sources):  # each source once, in order
            try:
                held.append(_mount(source, base, ssh_options, ssh_config))
            except RemoteUnavailable as error:
                log.warning("%s", error.one_line())
                failed.append(MountFailure(source, error))
        yield MountedSources(tuple(h.mount for h in held), tuple(failed), base)
    finally:
        for item in reversed(held):
            _unmount(item.mount.path)
            item.release()


def clean_stale(base: Path | None = None) -> list[Path]:
    """Unmount every mount under the base whose run is dead; return the mount points.

    A mount whose lock is held belongs to a live run and is left alone.
    """
    base = Path(os.path.realpath(base or mount_base()))
    if not base.is_dir():
        return []
    names = {entry.name.removesuffix(".lock") for entry in os.scandir(base)}
    names |= {Path(point).name for point in mount_points() if Path(point).parent == base}
    cleaned = []
    for name in sorted(names):
        try:
            lock = _Held.take(base / f"{name}.lock")
        except BlockingIOError:
            continue  # a live run's
        try:
            point = base / name
            if is_mounted(point):
                log.info("unmounting %s, left mounted by a run that ended", point)
                _unmount(point)
                cleaned.append(point)
            else:
                _remove_point(point)
        finally:
            lock.release()
    return cleaned


def mount_points() -> list[str]:
    """The mount points of this mount namespace, from /proc/self/mountinfo."""
    points = []
    with open("/proc/self/mountinfo", "rb") as handle:
        for line in handle:
            fields = line.split(b" ")
            if len(fields) > 4:
                points.append(os.fsdecode(_unescape(fields[4])))
    return points


def is_mounted(path: Path) -> bool:
    return os.path.realpath(path) in mount_points()


def ssh_argv(source: RemoteSource, ssh_options: Sequence[str],
             ssh_config: str | None) -> list[str]:
    """The ssh command that checks a source's connection: what sshfs runs, with stdin
    at end of file (the sftp server then exits at once)."""
    argv = ["ssh", "-x", "-a", "-o", "ClearAllForwardings=yes"]
    for option in _options(ssh_options):
        argv += ["-o", option]
    if ssh_config is not None:
        argv += ["-F", ssh_config]
    return [*argv, "-s", "--", source.login, "sftp"]


def sshfs_argv(source: RemoteSource, point: Path, ssh_options: Sequence[str],
               ssh_config: str | None) -> list[str]:
    argv = ["sshfs", "-o", "ro"]
    for option in _options(ssh_options):
        # sshfs splits -o values on commas; a backslash keeps one (and itself) literal.
        argv += ["-o", option.replace("\\", "\\\\").replace(",", "\\,")]
    if ssh_config is not None:
        argv += ["-F", ssh_config]
    return [*argv, "--", f"{source.login}:{source.path}", str(point)]


# -- one mount ----------------------------------------------------------------------

@dataclass
class _Held:
    """A flock on a mount's lock file, held while this process uses the mount."""

    fd: int
    mount: Mount | None = field(default=None)

    @classmethod
    def take(cls, path: Path) -> _Held:
        """Lock ``path`` (made 0600 if missing); raise BlockingIOError if a live run holds it."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise
        return cls(fd)

    def claim(self) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # drops the flock
            self.fd = -1


def _mount(source: RemoteSource, base: Path, ssh_options: Sequence[str],
           ssh_config: str | None) -> _Held:
    from cya import execute  # only mounting starts processes: ls and find never load it

    name = mount_name(source)
    point = base / name
    try:
        held = _Held.take(base / f"{name}.lock")
    except BlockingIOError:
        holder = _holder(base / f"{name}.lock")
        raise RemoteUnavailable(
            f"remote source {source}: mounted by another cya run{holder}",
            "wait for that run to finish") from None
    try:
        held.claim()
        if is_mounted(point):  # a dead run's: we hold its lock now
            log.info("unmounting %s, left mounted by a run that ended", point)
            _unmount(point)
        _check_connection(source, ssh_options, ssh_config)
        point.mkdir(mode=0o700, exist_ok=True)
        os.chmod(point, 0o700)
        try:
            done = execute.run(sshfs_argv(source, point, ssh_options, ssh_config),
                               timeout=_command_seconds(ssh_options))
        except CommandFailed as error:
            _remove_point(point)
            raise RemoteUnavailable(f"remote source {source}: cannot run sshfs: "
                                    f"{error.message}", "install sshfs") from None
        if done.returncode != 0 or done.stopped or not is_mounted(point):
            _remove_point(point)
            raise _sshfs_failure(source, done, ssh_options)
        log.info("mounted %s read-only at %s", source, point)
        held.mount = Mount(source, point)
        return held
    except BaseException:
        if held.mount is None and is_mounted(point):  # interrupted just after mounting
            _unmount(point)
        held.release()
        raise


def _check_connection(source: RemoteSource, ssh_options: Sequence[str],
                      ssh_config: str | None) -> None:
    """Raise RemoteUnavailable naming the host and ssh's reason unless ssh gets in."""
    from cya import execute

    try:
        done = execute.run(ssh_argv(source, ssh_options, ssh_config),
                           timeout=_command_seconds(ssh_options))
    except CommandFailed as error:
        raise RemoteUnavailable(f"remote source {source}: cannot run ssh: {error.message}",
                                "install openssh-client and sshfs") from None
    if done.returncode == 0 and not done.stopped:
        return
    lines = [line.strip() for line in done.tail if line.strip()
             and not line.startswith(("Warning: Permanently added", "debug"))]
    reason = done.stopped or (lines[-1] if lines else f"ssh exit status {done.returncode}")
    reason = reason.removeprefix("ssh: ")
    raise RemoteUnavailable(f"remote source {source}: host {source.host} cannot be reached: "
                            f"{reason}", _hint(source, reason), "\n".join(done.tail))


def _sshfs_failure(source: RemoteSource, done: Completed,
                   ssh_options: Sequence[str]) -> RemoteUnavailable:
    text = "\n".join(done.tail)
    unknown = re.search(r"unknown option\(s\): `-o (\S+)", text)
    if unknown:
        return RemoteUnavailable(
            f"remote source {source}: sshfs does not pass the ssh option {unknown[1]!r} "
            "to ssh", "remove it from ssh_options, or set it in ~/.ssh/config for the host",
            text)
    lines = [line.strip() for line in done.tail if line.strip()]
    reason = done.stopped or (lines[-1] if lines else f"sshfs exit status {done.returncode}")
    if "No such file or directory" in text:
        return RemoteUnavailable(
            f"remote source {source}: {source.path} does not exist on {source.host}",
            "check the path in sources", text)
    if done.returncode == 0 and not done.stopped:
        reason = "sshfs reported success but nothing is mounted"
    return RemoteUnavailable(f"remote source {source}: cannot mount it: {reason}",
                             "check that sshfs and /dev/fuse work on this machine", text)


def _hint(source: RemoteSource, reason: str) -> str:
    text = reason.lower()
    if "permission denied" in text:
        return (f"let this user's key in on {source.host} (ssh-copy-id {source.login}), "
                "or name the key with IdentityFile= in ssh_options")
    if "host key verification failed" in text or "host key" in text:
        return (f"check {source.host}'s host key (run: ssh {source.login} once), or add "
                "StrictHostKeyChecking=accept-new to ssh_options")
    if "could not resolve" in text:
        return f"check the host name {source.host}"
    return f"check that {source.host} is up and its ssh server listens (Port= in ssh_options)"


def _unmount(point: Path) -> None:
    """Unmount ``point`` (lazily if it is busy) and remove it; warn if it stays mounted."""
    from cya import execute

    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    for argv in ([tool, "-u", str(point)], [tool, "-u", "-z", str(point)]):
        try:
            execute.run(argv, timeout=UNMOUNT_SECONDS)
        except Exception as error:  # noqa: BLE001 - report below, never mask the run's error
            log.debug("%s: %s", argv[0], error)
        if not is_mounted(point):
            _remove_point(point)
            return
    log.warning("could not unmount %s; the next cya run tries again "
                "(or run: fusermount3 -u %s)", point, point)


def _remove_point(point: Path) -> None:
    try:
        point.rmdir()
    except FileNotFoundError:
        pass
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EBUSY):
            log.debug("cannot remove %s: %s", point, error)


def _private_base(base: Path) -> Path:
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    if base.stat().st_mode & 0o077:
        os.chmod(base, 0o700)
    return Path(os.path.realpath(base))


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _options(ssh_options: Sequence[str]) -> list[str]:
    """BatchMode first (ssh keeps the first value it reads), the user's, then defaults."""
    return [*ALWAYS, *ssh_options, *DEFAULTS]


def _command_seconds(ssh_options: Sequence[str]) -> float:
    """A bound for one ssh or sshfs command: a few connect timeouts."""
    connect = 10.0
    for option in ssh_options:
        match = re.fullmatch(r"\s*connecttimeout\s*[=\s]\s*(\d+)\s*", option, re.IGNORECASE)
        if match:
            connect = float(match[1])
            break
    return 3 * connect + 15


def _unescape(field: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field)
