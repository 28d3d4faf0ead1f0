"""Talking to duplicity: argument lists, its environment, its log, and what its errors mean.

Nothing outside this module builds duplicity's argv or reads its log; every run goes
through ``Duplicity.run``:

* The passphrase reaches duplicity only through ``PASSPHRASE`` in its environment;
  gpg's agent is started without it (cya/gpg.py), so nothing that outlives the run
  holds the secret.
* Duplicity's machine-readable log (``--log-file``) carries its documented error codes
  (``duplicity.log.ErrorCode``) and a backup's statistics. Which paths a backup stored
  is read from the signature file it leaves in its cache (``stored_paths``), every name
  as its bytes: logging each path (``--verbosity info``) cost duplicity ~5% of a backup
  that stores many, and dropped names that are not UTF-8.
* Every failure becomes one line a user can act on (``failure``).
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import logging
import os
import re
import shutil
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cya import execute
from cya.config import Settings
from cya.core import sigtar
from cya.core.names import format_time, parse_time
from cya.errors import CommandFailed, CyaError, Interrupted
from cya.fsutil import remove_tree
from cya.gpg import GPG_OPTIONS, Gpg
from cya.runs import cache_base

log = logging.getLogger("cya")

# duplicity.log.ErrorCode values cya gives a meaning to
HOSTNAME_MISMATCH = 3
RESTORE_PATH_NOT_FOUND = 19
USER_ERROR = 23
NOT_ENOUGH_FREESPACE = 35
SOURCE_PATH_MISMATCH = 42
BACKEND_NO_SPACE = 53
BAD_ENCRYPT_KEY = 81
UNREADABLE_FILE_WARNING = 10  # WARNING 10: "Error accessing possibly locked file"
STALL_ENV = "CYA_STALL_SECONDS"  # how long duplicity may make no progress (default 10 min)

_NO_SPACE = re.compile(r"No space left on device|Errno 28|ENOSPC")
_BAD_PASSPHRASE = re.compile(r"Bad session key|bad passphrase|No secret key", re.IGNORECASE)
_DAMAGED = re.compile(r"Invalid packet|invalid packet|uncompressing failed|hash mismatch|"
                      r"unexpected EOF|CRC error|Hash mismatch|truncated|ReadError|"
                      r"not a gzipped file|invalid tar header", re.IGNORECASE)


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


def _within(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or lies below it (both absolute and normal)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def _selects(option: str) -> bool:
    """Whether a duplicity option takes part in selection (and so in its order)."""
    return option.startswith(("--include", "--exclude", "--filter", "--files-from"))


def selection(settings: Settings, sources: Sequence[Path], never: Sequence[Path],
              also: Sequence[Path] = ()) -> list[str]:
    """Selection options, the config's ``duplicity_options`` among them, and the source
    argument: back up ``sources`` from ``/``.

    Paths in backups are absolute, as with restic and borg, so any number of
    sources fit one chain. ``never`` (the tree, duplicity's cache) is excluded before
    the sources are included: a tree inside a source must not back itself up. ``also``
    (cya's metadata of the run) is included whatever else the options say. duplicity
    takes the first selection option that matches a path, so both come before the
    ``duplicity_options`` (an ``--include`` there must not bring the tree back, an
    ``--exclude '**/.*'`` must not drop the metadata), and cya's own patterns after
    them are read as globs, case-sensitive, whatever ``--filter-*`` they switched to.

    duplicity tries its selection options on every path it walks, in order, until one
    says include or exclude, and each try costs a glob match and a debug log record
    (measured: five options cost a daily backup of 100,000 files 1.16x the CPU of a
    plain run). So only what can matter is passed: a ``never`` path only when it lies
    inside a source (or holds one: it then wins, as the user would expect) and not
    inside another ``never`` path, and ``also`` after the sources, where a file of a
    source never reaches it, unless an exclude before it could take it. Selection
    options among ``duplicity_options`` may reach anything: every ``never`` path and
    ``also`` then come first.
    """
    roots = [os.path.normpath(str(source)) for source in sources]
    selecting = [option for option in settings.duplicity_options if _selects(option)]
    excluded: list[str] = []
    for path in sorted({os.path.normpath(str(path)) for path in never}, key=len):
        if any(_within(path, top) for top in excluded):
            continue  # already excluded with a directory above it
        if selecting or any(_within(path, root) or _within(root, path) for root in roots):
            excluded.append(path)
    extra = [os.path.normpath(str(path)) for path in also]
    first = bool(settings.exclude) or bool(selecting) or any(
        _within(path, top) for path in extra for top in excluded)
    options: list[str] = []
    if first:
        for path in extra:
            options += ["--include", glob_escape(path)]
    for path in excluded:
        options += ["--exclude", glob_escape(path)]
    options += settings.duplicity_options
    if any(option.startswith("--filter") for option in selecting):
        options += ["--filter-globbing", "--filter-strictcase"]
    for pattern in settings.exclude:
        options += ["--exclude", pattern]
    for root in roots:
        options += ["--include", glob_escape(root)]
    if not first:
        for path in extra:
            options += ["--include", glob_escape(path)]
    options += ["--exclude", "**", "/"]
    return options


_OWN_CACHE = "cya sets it (one duplicity cache per level)"
_OWN_NAMES = "cya finds backups in the tree by duplicity's standard file names"
_OWN_KIND = ("duplicity would make a full that cya records and reports as an incremental "
             "(cya starts a full where its levels need one)")
_PRINTS = "duplicity would print it instead of backing up"
# what duplicity_options may not hold in any mode, and why: cya sets it for every backup
# itself, or duplicity would then do something other than what cya records and reports
_REFUSED = {
    "--archive-dir": _OWN_CACHE,
    "--name": _OWN_CACHE,
    "--file-prefix": _OWN_NAMES,
    "--file-prefix-archive": _OWN_NAMES,
    "--file-prefix-manifest": _OWN_NAMES,
    "--file-prefix-signature": _OWN_NAMES,
    "--file-prefix-jsonstat": _OWN_NAMES,
    "--current-time": "cya sets it to the backup's time (cya --now chooses that time)",
    "--full-if-older-than": _OWN_KIND,
    "--full-if-n-inc": _OWN_KIND,
    "--dry-run": "use cya backup --dry-run",
    "--help": _PRINTS,
    "--version": _PRINTS,
    "--exclude-other-filesystems": (
        "cya backs up from / so duplicity would leave out every source on another file "
        "system than / (exclude mount points by the config's exclude globs instead)"),
    "--copy-links": ("cya records and restores symlinks as links: its file index and "
                     "metadata would not match what duplicity stores"),
}
_TO_A_KEY = ("--encrypt-key", "--hidden-encrypt-key", "--encrypt-sign-key")
# duplicity options that are also starts of refused ones: duplicity reads each as itself
# (tests/unit/test_duplicity_options.py checks every start against duplicity's parser)
_WHOLE = frozenset({"--exclude", "--file-prefix"})
_VERBOSITY = "--verbosity"
_VERBOSITY_WORDS = {"e": 0, "error": 0, "w": 2, "warning": 2, "n": 3, "notice": 3,
                    "i": 5, "info": 5, "d": 9, "debug": 9}
_LEAST_VERBOSITY = 2  # duplicity.log.WARNING: cya reads its warnings (unreadable files)


def _refused(mode: str) -> dict[str, str]:
    """``_REFUSED`` and the options that would encrypt otherwise than ``mode`` says."""
    refused = dict(_REFUSED)
    if mode == "none":
        refused["--encryption"] = ("the backups would be encrypted though encryption.mode "
                                   "is \"none\" (set mode = \"passphrase\" or "
                                   "\"gpg-key\" instead)")
    else:
        refused["--no-encryption"] = (f"the backups would be stored unencrypted though "
                                      f"encryption.mode is \"{mode}\" (set mode = \"none\" "
                                      "if that is meant)")
    if mode != "gpg-key":
        for option in _TO_A_KEY:
            refused[option] = (f"the backups would be encrypted to a gpg key, not as "
                               f"encryption.mode = \"{mode}\" says (set mode = \"gpg-key\" "
                               "and gpg_key instead)")
    return refused


def _verbosity(value: str) -> int | None:
    """The level a duplicity verbosity value means (None: not one; duplicity refuses it)."""
    value = value.lower()
    if value in _VERBOSITY_WORDS:
        return _VERBOSITY_WORDS[value]
    return int(value) if value.isdigit() else None


def refused_options(options: Sequence[str], mode: str) -> list[str]:
    """What in ``duplicity_options`` a backup must refuse, one line each (empty: none).

    Besides what cya sets itself or what changes what a backup holds behind cya's back
    (``_REFUSED``), the options that would make duplicity encrypt otherwise than
    ``encryption.mode`` says: ``--no-encryption`` (backups the user thinks encrypted
    would be stored and sent off-site readable) unless the mode is ``none``, and
    encrypting to a key unless the mode is ``gpg-key`` (the passphrase would then
    restore nothing; with ``gpg-key`` they add recipients, which is fine), and
    ``--encryption`` in mode ``none`` (duplicity would ask for a passphrase); and a
    verbosity below warning, which keeps from cya the warnings that name the files
    duplicity could not read. duplicity reads an unambiguous start of a long option as
    the option, so a start of a refused one is refused too (an ambiguous start
    duplicity refuses itself)."""
    refused = _refused(mode)
    problems = []
    for at, token in enumerate(options):
        following = options[at + 1] if at + 1 < len(options) else ""
        name, equals, value = token.partition("=")
        if token[:1] == "-" and token[1:2] not in ("", "-"):  # a short option
            if token[1] in "hV":
                problems.append(f"duplicity_options: {token} cannot be passed to a "
                                f"backup: {_PRINTS}")
            elif token[1] == "v":
                problems += _too_quiet(token, token[2:] or None, following)
            continue
        if not name.startswith("--") or len(name) < 3:
            continue
        if len(name) > len("--ver") and _VERBOSITY.startswith(name):
            problems += _too_quiet(token, value if equals else None, following)
            continue
        meant = ([name] if name in refused else [] if name in _WHOLE else
                 sorted(option for option in refused if option.startswith(name)))
        if meant:
            start = "" if meant == [name] else f" (a start of {' or '.join(meant)})"
            problems.append(f"duplicity_options: {name}{start} cannot be passed to a "
                            f"backup: {refused[meant[0]]}")
    return problems


def _too_quiet(token: str, inline: str | None, following: str) -> list[str]:
    """The problem with a verbosity option (``-v``, ``--verbosity``) below warning, if
    it is: its value ``inline`` (``-v0``, ``--verb=0``), else the token ``following``."""
    level = _verbosity(following if inline is None else inline)
    if level is None or level >= _LEAST_VERBOSITY:
        return []
    given = token if inline is not None else f"{token} {following}"
    return [f"duplicity_options: {given} would keep from cya the warnings that name the "
            "files duplicity could not read (use warning or more)"]


def encryption(settings: Settings) -> list[str]:
    mode = settings.encryption.mode
    if mode == "none":
        return ["--no-encryption"]
    if mode == "gpg-key":
        return ["--encrypt-key", settings.encryption.gpg_key]
    return [f"--gpg-options={' '.join(GPG_OPTIONS)}"]


@dataclass(frozen=True)
class Cache:
    """Duplicity's archive dir and the name of one level's cache inside it."""

    archive_dir: Path
    name: str


@dataclass
class LogRecord:
    level: str
    code: int
    extra: str
    text: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """A duplicity run that succeeded: its log records."""

    records: list[LogRecord]

    def statistics(self) -> dict[str, float]:
        return statistics(self.records)


class Duplicity:
    """Runs duplicity for one config: the secret in its environment only, gpg's agent
    started without it (cya/gpg.py), every failure mapped to one line."""

    def __init__(self, settings: Settings, passphrase: str | None):
        self.settings = settings
        self.passphrase = passphrase
        self.gpg = Gpg(settings, passphrase)

    def __enter__(self) -> Duplicity:
        return self

    def __exit__(self, *exc: object) -> None:
        self.gpg.close()

    def run(self, argv: Sequence[str], log_file: Path, *, doing: str,
            pass_fds: Sequence[int] = (), live: Callable[[], None] | None = None) -> Outcome:
        """Run duplicity with ``argv`` (after the binary) logging to ``log_file``.

        Return its log. Raise Interrupted when cya was asked to stop, CommandFailed (one
        line saying what it means) when duplicity failed or stalled. ``live`` is called
        every few tenths of a second while it runs.
        """
        env = self.gpg.env()
        if self.passphrase is not None:
            env["PASSPHRASE"] = self.passphrase
        env["PYTHONIOENCODING"] = "utf-8:surrogateescape"  # any file name prints
        done = execute.run([binary(), *argv, "--log-file", str(log_file)], env=env,
                           secrets=[self.passphrase or ""], pass_fds=pass_fds,
                           stall_after=float(os.environ.get(STALL_ENV, "600")),
                           on_poll=live, report_signal=True)
        records = read_log(log_file)
        if done.signalled is not None:
            raise Interrupted(f"interrupted by signal {done.signalled}")
        if done.stopped is not None:
            raise CommandFailed(f"duplicity {done.stopped} while trying to {doing}, and was "
                                "stopped", _damage_hint(records, done.tail),
                                "\n".join(done.tail))
        if done.returncode != 0:
            raise failure(done.returncode, records, done.tail, self.settings, doing)
        return Outcome(records)


def _damage_hint(records: Sequence[LogRecord], tail: Sequence[str]) -> str:
    text = "\n".join([line for r in records for line in r.text] + list(tail))
    if _DAMAGED.search(text):
        return "a file of the chain looks damaged; run: cya check"
    return "run with -v to see duplicity's output"


def backup_argv(*, full: bool, settings: Settings, sources: Sequence[Path], target: Path,
                cache: Cache, tempdir: Path, time: datetime, never: Sequence[Path],
                also: Sequence[Path] = ()) -> list[str]:
    return [
        "full" if full else "incremental",
        "--current-time", str(int(time.timestamp())),
        "--archive-dir", str(cache.archive_dir),
        "--name", cache.name,
        "--tempdir", str(tempdir),
        # the target is a local directory: a failed write is not a network blip, and
        # duplicity's default of 5 attempts 30 s apart only delays the error
        "--num-retries", "1",
        *encryption(settings),
        *selection(settings, sources, never, also),  # duplicity_options among them
        f"file://{target}",
    ]


def reading_argv(command: str, *, settings: Settings, source: Path, time: datetime,
                 work: Path, extra: Sequence[str] = ()) -> list[str]:
    """argv of a duplicity command that reads one level (``restore``,
    ``list-current-files``) as of ``time``, with a throwaway cache under ``work``."""
    return [
        command,
        "--time", str(int(time.timestamp())),
        "--archive-dir", str(work / "cache"), "--name", command,
        "--tempdir", str(work),
        "--num-retries", "1",
        *encryption(settings),
        f"file://{source}",
        *extra,
    ]


def parse_log(lines: str | Iterable[str]) -> list[LogRecord]:
    """Parse duplicity's machine-readable log (its text, or its lines): ``LEVEL CODE
    [extra]`` then ``. text`` lines."""
    records: list[LogRecord] = []
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        if line.startswith(". ") or line == ".":
            if records:
                records[-1].text.append(line[2:])
            continue
        head = line.split(" ", 2)
        if len(head) >= 2 and head[0].isupper() and head[1].isdigit():
            records.append(LogRecord(head[0], int(head[1]), head[2] if len(head) > 2 else ""))
    return records


def _log_lines(log_file: Path) -> Iterator[str]:
    """The lines of a log file as ``str.splitlines`` of its whole text gives them, read
    as they are needed."""
    with open(log_file, "rb") as handle:
        for line in handle:
            yield from line.decode("utf-8", "replace").splitlines()


def read_log(log_file: Path) -> list[LogRecord]:
    """``parse_log`` of a log file, streamed; no file, no records."""
    try:
        return parse_log(_log_lines(log_file))
    except FileNotFoundError:
        return []


def unescape(quoted: str) -> str:
    """The file name duplicity's ``util.escape`` wrote (``'caf\\udce9\\n.txt'``), as cya
    keeps names: a str whose undecodable bytes are surrogates (``os.fsencode`` gives
    back the exact bytes)."""
    text = quoted.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    if text.isascii() and "\\" not in text:
        return text  # nothing escaped: most names, and a third of a full's index time
    return codecs.decode(text, "unicode-escape")


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


# the signature file is read a header (512 bytes) at a time: from a buffer, in C, and
# gunzipped a megabyte at a time, not through GzipFile.read for each header (measured on
# a full of 200,000 paths, medians of 6: 1.57 s that way, 1.11 s this way)
_SIGTAR_BUFFER = 1 << 20


def stored_paths(cache: Cache, time: datetime) -> Iterator[tuple[str, bytes]]:
    """(change, path relative to ``/``) of every path the backup set ending at ``time``
    stored (``A`` in a full, ``M`` added or changed, ``D`` deleted), read from the
    signature file duplicity left in the cache (plain gzip there, whatever the
    encryption): what it stored, every name as its bytes, read as it is needed, so a
    full of any size is never held in memory. Whether the set is a full is read from
    the file's name (duplicity makes a full when asked for an incremental it cannot
    make). Raise CyaError when the file is missing or is not what duplicity writes."""
    stamp = format_time(time)
    pattern = re.compile(rf"duplicity-(full|new)-signatures\.(\d{{8}}T\d{{6}}Z\.to\.)?"
                         rf"{stamp}\.sigtar(\.gz)?")
    folder = cache.archive_dir / cache.name
    try:
        found = sorted((entry.path, match[1] == "full") for entry in os.scandir(folder)
                       if (match := pattern.fullmatch(entry.name))
                       and (match[1] == "full") != bool(match[2]))
    except FileNotFoundError:
        found = []
    if not found:
        raise CyaError(f"duplicity left no signature file for the backup at {stamp} in "
                       f"{folder}", "run with -v and report this")
    path, full = found[-1]
    try:
        with open(path, "rb", buffering=_SIGTAR_BUFFER) as raw, \
                (io.BufferedReader(gzip.GzipFile(fileobj=raw), _SIGTAR_BUFFER)
                 if raw.peek(2)[:2] == b"\x1f\x8b" else contextlib.nullcontext(raw)) as handle:
            # duplicity runs in cya's environment: its names are in this file system encoding
            yield from sigtar.changes(handle.read, full, sys.getfilesystemencoding())
    except (OSError, EOFError, zlib.error, sigtar.SigtarError) as error:
        raise CyaError(f"duplicity's signature file {path} cannot be read: {error}",
                       "run with -v and report this") from None


def unreadable_files(records: Sequence[LogRecord]) -> list[str]:
    """Paths duplicity could not read (it warns and goes on without them)."""
    # duplicity names them by their absolute path; changes are relative to "/"
    return [unescape(record.extra).lstrip("/") for record in records
            if record.level == "WARNING" and record.code == UNREADABLE_FILE_WARNING]


def failure(returncode: int, records: Sequence[LogRecord], tail: Sequence[str],
            settings: Settings, doing: str = "back up") -> CommandFailed:
    """Return the error that says what a failed duplicity run means."""
    errors = [r for r in records if r.level == "ERROR"]
    code = errors[-1].code if errors else returncode
    everything = "\n".join(
        [line for r in errors for line in [r.extra, *r.text]] + list(tail))
    detail = "\n".join(tail)
    first = next((line for r in errors for line in r.text if line.strip()), "")
    if _NO_SPACE.search(everything) or code == BACKEND_NO_SPACE:
        return CommandFailed(
            f"disk full: no space left while trying to {doing}",
            "free some space there and run again; no earlier backup was touched",
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
    if _DAMAGED.search(everything):
        return CommandFailed(
            f"a file of the chain is damaged (duplicity: {first or 'unreadable data'}) "
            f"while trying to {doing}",
            "run: cya check (it names the file and how to repair it); other backups are "
            "not affected", detail)
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
    return CommandFailed(f"duplicity failed (error {code}) while trying to {doing}: {message}",
                         "run with -v to see duplicity's output", detail)


def cache_root(identity: str) -> Path:
    """Duplicity's archive dir for one tree, under the user cache dir (0700)."""
    return cache_base() / identity


def cache_for(identity: str, leaf_name: str) -> Cache:
    """The cache of the one level duplicity writes to: the leaf. One name per level."""
    return Cache(cache_root(identity), f"week-{leaf_name}")


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


LISTED_FILE = 10  # InfoCode.file_list: "INFO 10 <mtime> '<path>' <type>"
_LISTED_TYPES = {"reg": "file", "dir": "dir", "sym": "symlink"}


def listed_files(records: Sequence[LogRecord]) -> list[tuple[str, str, datetime | None]]:
    """(path relative to ``/``, type, mtime) of each file ``list-current-files`` logged."""
    files = []
    for record in records:
        if record.level == "INFO" and record.code == LISTED_FILE and record.extra:
            stamp, _, rest = record.extra.partition(" ")
            quoted, _, kind = rest.rpartition(" ")
            try:
                mtime = parse_time(stamp)
            except ValueError:
                mtime = None
            files.append((unescape(quoted), _LISTED_TYPES.get(kind, "other"), mtime))
    return files

