"""Talking to duplicity: argument lists, its environment, and what its errors mean.

The passphrase reaches duplicity only through ``PASSPHRASE`` in its
environment. Duplicity's machine-readable log (``--log-file``) carries its
documented error codes (``duplicity.log.ErrorCode``); they are mapped here to
one line a user can act on.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import platformdirs

from cya.config import Settings
from cya.core.names import parse_time
from cya.errors import CommandFailed
from cya.fsutil import remove_tree

# duplicity.log.ErrorCode values cya gives a meaning to
HOSTNAME_MISMATCH = 3
USER_ERROR = 23
GPG_FAILED = 31
SOURCE_PATH_MISMATCH = 42
RESTORE_PATH_NOT_FOUND = 19
NOT_ENOUGH_FREESPACE = 35
BACKEND_NO_SPACE = 53
BAD_ENCRYPT_KEY = 81
UNREADABLE_FILE_WARNING = 10  # WARNING 10: "Error accessing possibly locked file"

_NO_SPACE = re.compile(r"No space left on device|Errno 28|ENOSPC")
_BAD_PASSPHRASE = re.compile(r"Bad session key|decryption failed|bad passphrase|"
                             r"No secret key|decrypt_message failed", re.IGNORECASE)


def binary() -> str:
    """The duplicity to run: ``$CYA_DUPLICITY``, else the one installed beside cya, else PATH's."""
    configured = os.environ.get("CYA_DUPLICITY")
    if configured:
        return configured
    beside = Path(sys.executable).parent / "duplicity"
    if beside.exists():
        return str(beside)
    return shutil.which("duplicity") or "duplicity"


def glob_escape(path: str) -> str:
    """Quote a literal path for duplicity's glob selection."""
    return re.sub(r"([\[\]*?])", r"[\1]", path)


def selection(settings: Settings, never: Sequence[Path]) -> list[str]:
    """Selection options and the source argument: back up ``settings.sources`` from ``/``.

    Paths in backups are absolute, as with restic and borg, so any number of
    sources fit one chain. ``never`` (the tree, duplicity's cache) is excluded
    first: a tree inside a source must not back itself up.
    """
    options: list[str] = []
    for path in never:
        options += ["--exclude", glob_escape(str(path))]
    for pattern in settings.exclude:
        options += ["--exclude", pattern]
    for source in settings.sources:
        options += ["--include", glob_escape(str(source))]
    options += ["--exclude", "**", "/"]
    return options


def encryption(settings: Settings) -> list[str]:
    mode = settings.encryption.mode
    if mode == "none":
        return ["--no-encryption"]
    if mode == "gpg-key":
        return ["--encrypt-key", settings.encryption.gpg_key]
    return []


def environment(passphrase: str | None) -> dict[str, str]:
    return {"PASSPHRASE": passphrase} if passphrase is not None else {}


@dataclass(frozen=True)
class Cache:
    """Duplicity's archive dir and the name of one level's cache inside it."""

    archive_dir: Path
    name: str


def backup_argv(
    *,
    full: bool,
    settings: Settings,
    target: Path,
    cache: Cache,
    tempdir: Path,
    time: datetime,
    log_file: Path,
    never: Sequence[Path],
) -> list[str]:
    return [
        binary(),
        "full" if full else "incremental",
        "--current-time", str(int(time.timestamp())),
        "--archive-dir", str(cache.archive_dir),
        "--name", cache.name,
        "--tempdir", str(tempdir),
        "--log-file", str(log_file),
        "--verbosity", "info",  # logs each added, changed and deleted path: the file index
        # the target is a local directory: a failed write is not a network blip, and
        # duplicity's default of 5 attempts 30 s apart only delays the error
        "--num-retries", "1",
        *encryption(settings),
        *settings.duplicity_options,
        *selection(settings, never),
        f"file://{target}",
    ]


@dataclass
class LogRecord:
    level: str
    code: int
    extra: str
    text: list[str] = field(default_factory=list)


def parse_log(text: str) -> list[LogRecord]:
    """Parse duplicity's machine-readable log: ``LEVEL CODE [extra]`` then ``. text`` lines."""
    records: list[LogRecord] = []
    for line in text.splitlines():
        if line.startswith(". ") or line == ".":
            if records:
                records[-1].text.append(line[2:])
            continue
        head = line.split(" ", 2)
        if len(head) >= 2 and head[0].isupper() and head[1].isdigit():
            records.append(LogRecord(head[0], int(head[1]), head[2] if len(head) > 2 else ""))
    return records


def statistics(records: Sequence[LogRecord]) -> dict[str, float]:
    """The "Backup Statistics" block duplicity logs after a backup."""
    stats: dict[str, float] = {}
    for record in records:
        if any("Backup Statistics" in line for line in record.text):
            for line in record.text:
                parts = line.split()
                if len(parts) >= 2 and parts[0].isalpha():
                    try:
                        stats[parts[0]] = float(parts[1])
                    except ValueError:
                        pass
    return stats


FILE_CHANGES = {4: "A", 5: "M", 6: "D"}  # InfoCode diff_file_new / _changed / _deleted


def file_changes(records: Sequence[LogRecord]) -> list[tuple[str, str]]:
    """(change, path) for every path a backup added, changed or deleted (logged at -v info)."""
    changes = []
    for record in records:
        change = FILE_CHANGES.get(record.code) if record.level == "INFO" else None
        if change and record.text:
            mark, _, path = record.text[0].partition(" ")
            if mark == change and path:
                changes.append((change, path))
    return changes


def unreadable_files(records: Sequence[LogRecord]) -> list[str]:
    """Paths duplicity could not read (it warns and goes on without them)."""
    paths = []
    for record in records:
        if record.level == "WARNING" and record.code == UNREADABLE_FILE_WARNING:
            paths.append(record.extra.strip().strip("'\""))
    return paths


def failure(returncode: int, records: Sequence[LogRecord], tail: Sequence[str],
            settings: Settings) -> CommandFailed:
    """Return the error that says what a failed duplicity run means."""
    errors = [r for r in records if r.level == "ERROR"]
    code = errors[-1].code if errors else returncode
    everything = "\n".join(
        [line for r in errors for line in [r.extra, *r.text]] + list(tail))
    detail = "\n".join(tail)
    first = next((line for r in errors for line in r.text if line.strip()), "")
    if _NO_SPACE.search(everything) or code == BACKEND_NO_SPACE:
        return CommandFailed(
            f"disk full: no space left for the backup in {settings.tree}",
            "free some space there and run the backup again; no earlier backup was touched",
            detail)
    if code == NOT_ENOUGH_FREESPACE:
        return CommandFailed(
            f"disk full: not enough free space in {settings.tree} ({first.rstrip('.')})",
            "free some space there, or pass a smaller \"--volsize\" (MB) in "
            "duplicity_options", detail)
    if _BAD_PASSPHRASE.search(everything):
        where = (f"the passphrase in {settings.encryption.passphrase_file}"
                 if settings.encryption.mode == "passphrase" else "the gpg key")
        return CommandFailed(
            f"wrong passphrase: duplicity cannot decrypt the existing backups with {where}",
            "put back the passphrase this tree was made with", detail)
    if code == BAD_ENCRYPT_KEY:
        return CommandFailed(
            f"gpg cannot encrypt to key {settings.encryption.gpg_key!r}",
            "import the public key (gpg --import) or fix encryption.gpg_key", detail)
    if code == HOSTNAME_MISMATCH:
        return CommandFailed(
            "this machine's hostname differs from the one that made the chain",
            "if this machine replaces that one, add \"--allow-source-mismatch\" to "
            "duplicity_options", detail)
    if code == SOURCE_PATH_MISMATCH:
        return CommandFailed(
            "the chain was made from a different source path",
            "add \"--allow-source-mismatch\" to duplicity_options if that is intended", detail)
    if code == USER_ERROR and "does not exist" in everything:
        return CommandFailed(f"duplicity: {first}", "check sources in the config", detail)
    message = first or (tail[-1] if tail else f"exit status {returncode}")
    return CommandFailed(f"duplicity failed (error {code}): {message}",
                         "run with -v to see duplicity's output", detail)


def cache_root(tree_id: str) -> Path:
    """Duplicity's archive dir for one tree, under the user cache dir (0700)."""
    return Path(platformdirs.user_cache_dir("cya")) / tree_id


def cache_for(tree_id: str, leaf_name: str) -> Cache:
    """The cache of the one level duplicity writes to: the leaf. One name per level."""
    return Cache(cache_root(tree_id), f"week-{leaf_name}")


def adopt_cache(cache: Cache) -> None:
    """Give a new leaf the cache of the leaf written before it.

    The new leaf's chain starts with the same full (and often more) as the old
    one's, and duplicity's sync keeps cached files whose names are still in the
    target, deletes the rest, and decrypts only what is missing. Starting empty
    would decrypt the whole base chain's signatures: most of a new week's cost.
    (Same name means same backup set, and in the tree the very same file.)
    """
    if not cache.archive_dir.is_dir() or (cache.archive_dir / cache.name).exists():
        return
    previous = [entry for entry in cache.archive_dir.iterdir() if entry.is_dir()]
    if previous:
        newest = max(previous, key=lambda entry: entry.stat().st_mtime)
        os.rename(newest, cache.archive_dir / cache.name)


def drop_caches(cache: Cache, keep: bool = True) -> None:
    """Remove every level cache of this tree but ``cache`` (and ``cache`` too unless ``keep``).

    Only the leaf is ever written, so only its cache earns its space; the others
    would grow with the number of levels.
    """
    if not cache.archive_dir.is_dir():
        return
    for entry in cache.archive_dir.iterdir():
        if entry.name != cache.name or not keep:
            remove_tree(entry)


def reading_argv(command: str, *, settings: Settings, source: Path, time: datetime,
                 work: Path, log_file: Path, extra: Sequence[str] = ()) -> list[str]:
    """argv of a duplicity command that reads one level (``restore``,
    ``list-current-files``) as of ``time``, with a throwaway cache under ``work``."""
    return [
        binary(), command,
        "--time", str(int(time.timestamp())),
        "--archive-dir", str(work / "cache"), "--name", command,
        "--tempdir", str(work),
        "--log-file", str(log_file),
        "--num-retries", "1",
        *encryption(settings),
        f"file://{source}",
        *extra,
    ]


LISTED_FILE = 10  # InfoCode.file_list: "INFO 10 <mtime> '<path>' <type>"
_LISTED_TYPES = {"reg": "file", "dir": "dir", "sym": "symlink"}


def listed_files(records: Sequence[LogRecord]) -> list[tuple[str, str, datetime | None]]:
    """(path relative to ``/``, type, mtime) of each file ``list-current-files`` logged."""
    files = []
    for record in records:
        if record.level == "INFO" and record.code == LISTED_FILE and record.text:
            line = record.text[0]
            # the text is "Mon Dec  4 12:00:00 2012 path": 24 characters of date, a space
            path = line[25:] if len(line) > 25 else line
            stamp, _, rest = record.extra.partition(" ")
            kind = _LISTED_TYPES.get(rest.rsplit(" ", 1)[-1], "other")
            try:
                mtime = parse_time(stamp)
            except ValueError:
                mtime = None
            files.append((path, kind, mtime))
    return files
