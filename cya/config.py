"""The config file: where it is, what it may say, and the frozen Settings it becomes.

Lookup order (DESIGN.md 3): ``--config``, then ``$CYA_CONFIG``, then the user
config dir (``~/.config/cya/config.toml``), then ``/etc/cya/config.toml``.
The file is validated once, completely: every problem is reported with its key
path, and the rest of the code only ever sees ``Settings``. Files that hold or
lead to secrets must not be readable by group or others.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from cya.core.dates import parse_duration
from cya.core.remote import RemoteSource, looks_remote, parse_remote
from cya.core.retention import CADENCES
from cya.core.timescale import KINDS, WeekStart
from cya.errors import ConfigError

SYSTEM_CONFIG_PATH = Path("/etc/cya/config.toml")
ENCRYPTION_MODES = ("passphrase", "gpg-key", "none")
# S3 storage classes a bag may be written in (Deep Archive is the point; the rest for
# other stores and for tests)
STORAGE_CLASSES = ("DEEP_ARCHIVE", "GLACIER", "GLACIER_IR", "STANDARD_IA", "ONEZONE_IA",
                   "INTELLIGENT_TIERING", "STANDARD")
MAX_BAG = 5 * 10**12  # S3's largest object
TRIMMED_KINDS = KINDS[1:]  # a level of these kinds has siblings that trimming may delete
HOOK_KINDS = ("before_backup", "after_backup", "on_error", "before_restore", "after_restore")
_SSH_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]*\s*(=\s*|\s+)\S.*", re.DOTALL)


@dataclass(frozen=True)
class Encryption:
    mode: str = "passphrase"
    passphrase_file: Path | None = None
    gpg_key: str = ""


@dataclass(frozen=True)
class Trim:
    auto: bool = True
    keep: int = 2
    keep_by_kind: Mapping[str, int] = field(default_factory=dict)

    def keep_for(self, kind: str) -> int:
        """How many child levels of this kind each parent keeps."""
        return self.keep_by_kind.get(kind, self.keep)


@dataclass(frozen=True)
class Archive:
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    storage_class: str = "DEEP_ARCHIVE"
    bag_size: int = 40 * 10**9
    min_age_days: int = 180
    auto: bool = True
    keep_years: int = 0
    cadence: str = "backup"  # backup | week | month | year: how soon new files go off-site
    prune: bool = True  # run the remote retention after every archive run

    @property
    def enabled(self) -> bool:
        return bool(self.bucket)


Command = tuple[str, ...]  # one argument list: the program, then its arguments


@dataclass(frozen=True)
class Hooks:
    """Commands run around a backup or restore (``cya/hooks.py``), each within ``timeout``."""

    before_backup: tuple[Command, ...] = ()
    after_backup: tuple[Command, ...] = ()
    on_error: tuple[Command, ...] = ()
    before_restore: tuple[Command, ...] = ()
    after_restore: tuple[Command, ...] = ()
    timeout: float = 3600.0  # seconds, for each command

    def commands(self, kind: str) -> tuple[Command, ...]:
        """The commands of one hook kind (one of HOOK_KINDS), in order."""
        if kind not in HOOK_KINDS:
            raise ValueError(f"unknown hook kind {kind!r}")
        return getattr(self, kind)


@dataclass(frozen=True)
class Monitoring:
    ping_url: str = ""  # Healthchecks convention (cya/monitoring.py); empty: no pings

    @property
    def enabled(self) -> bool:
        return bool(self.ping_url)


@dataclass(frozen=True)
class Settings:
    config_path: Path
    tree: Path
    sources: tuple[Path, ...]
    exclude: tuple[str, ...] = ()
    week_start: WeekStart = WeekStart.SUNDAY
    duplicity_options: tuple[str, ...] = ()
    encryption: Encryption = Encryption()
    trim: Trim = Trim()
    archive: Archive = Archive()
    remote_sources: tuple[RemoteSource, ...] = ()  # sources written [user@]host:/path
    ssh_options: tuple[str, ...] = ()  # "Key=Value", each given to ssh as -o
    hooks: Hooks = Hooks()
    monitoring: Monitoring = Monitoring()
    log_file: Path | None = None  # append timestamped, secret-masked lines of every run


def user_config_path() -> Path:
    return Path(platformdirs.user_config_dir("cya")) / "config.toml"


def find_config(explicit: str | None) -> Path:
    """Return the config file to use, by the lookup order. Raise ConfigError if none exists."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("CYA_CONFIG")
    if from_env:
        return Path(from_env)
    candidates = [user_config_path(), SYSTEM_CONFIG_PATH]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no config file found (looked at $CYA_CONFIG, {looked})",
        "run: cya init --source DIR --tree DIR",
    )


def config_path_for_init(explicit: str | None) -> Path:
    """Where ``cya init`` writes: ``--config``, else ``$CYA_CONFIG``, else the user config dir."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("CYA_CONFIG") or user_config_path())


def check_private(path: Path, what: str) -> None:
    """Raise ConfigError unless ``path`` is a regular file only its owner can read or write."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist", "check the path") from None
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{what} {path} is readable or writable by others (mode {mode:04o})",
            f"run: chmod 600 {path}",
        )


def load(path: Path) -> Settings:
    """Read, check and validate the config file. Raise ConfigError naming every problem."""
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist",
                          "run: cya init --source DIR --tree DIR, or name your config "
                          "with --config or $CYA_CONFIG")
    check_private(path, "config file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}",
                          "fix the file there (cya config validate checks it)") from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests too deeply to be a cya config",
                          "fix the file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    return _Validator(path).settings(raw)


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def parse_size(text: str) -> int | None:
    """Return the bytes a size such as ``40GB`` or ``512MiB`` names, or None."""
    match = _SIZE.fullmatch(text)
    if not match:
        return None
    return int(float(match[1]) * _UNITS[(match[2] or "").lower()])


class _Validator:
    """Collects every problem in a raw config, then builds Settings or raises them all."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def settings(self, raw: dict) -> Settings:
        top = self._table(raw, "", {
            "tree", "sources", "exclude", "week_start", "duplicity_options",
            "encryption", "trim", "archive", "ssh_options", "hooks", "monitoring", "log_file",
        })
        tree = self._path(top, "tree", required=True)
        log_file = self._path(top, "log_file")
        local, remote = [], []
        for i, text in enumerate(self._strings(top, "sources", required=True)):
            if looks_remote(text):
                try:
                    remote.append(parse_remote(text))
                except ValueError as error:
                    self.problems.append(f"sources[{i}]: {error}")
            else:
                local.append(self._path_item(text, f"sources[{i}]"))
        sources = tuple(local)
        if "sources" in top and not top["sources"] and isinstance(top["sources"], list):
            self.problems.append("sources: list at least one directory")
        ssh_options = self._ssh_options(top)
        hooks = self._hooks(top.get("hooks", {}))
        monitoring = self._monitoring(top.get("monitoring", {}))
        week_start = self._choice(top, "week_start", [w.value for w in WeekStart], "sunday")
        encryption = self._encryption(top.get("encryption", {}))
        trim = self._trim(top.get("trim", {}))
        archive = self._archive(top.get("archive", {}))
        exclude = tuple(self._strings(top, "exclude"))
        duplicity_options = tuple(self._strings(top, "duplicity_options"))
        if self.problems:
            raise ConfigError(
                f"config file {self.path}: " + "; ".join(self.problems),
                "fix these keys (see the config reference in README.rst)",
            )
        return Settings(
            config_path=self.path,
            tree=tree,
            sources=sources,
            exclude=exclude,
            week_start=WeekStart(week_start),
            duplicity_options=duplicity_options,
            encryption=encryption,
            trim=trim,
            archive=archive,
            remote_sources=tuple(remote),
            ssh_options=ssh_options,
            hooks=hooks,
            monitoring=monitoring,
            log_file=log_file,
        )

    def _ssh_options(self, top: dict) -> tuple[str, ...]:
        options = self._strings(top, "ssh_options")
        for i, option in enumerate(options):
            if not _SSH_OPTION.fullmatch(option):
                self.problems.append(f"ssh_options[{i}]: {option!r} is not an ssh option "
                                     "like \"Port=2222\" or \"IdentityFile=/root/.ssh/backup\"")
        return tuple(options)

    def _hooks(self, raw: object) -> Hooks:
        table = self._table(raw, "hooks", {*HOOK_KINDS, "timeout"})
        commands = {kind: self._commands(table, kind, "hooks.") for kind in HOOK_KINDS}
        timeout = Hooks().timeout
        if "timeout" in table:
            value = table["timeout"]
            length = parse_duration(value) if isinstance(value, str) else None
            if length is None or length.total_seconds() <= 0:
                self.problems.append(f"hooks.timeout: {value!r} is not a duration "
                                     "like \"1h\", \"30m\" or \"90s\"")
            else:
                timeout = length.total_seconds()
        return Hooks(**commands, timeout=timeout)

    def _commands(self, table: dict, key: str, prefix: str) -> tuple[Command, ...]:
        """A list of argument lists, each naming a program: ``[["pg_dump", "-f", "x"]]``."""
        value = table.get(key, [])
        example = '[["pg_dump", "-f", "/var/backups/db.sql"]]'
        if not isinstance(value, list):
            self.problems.append(f"{prefix}{key}: must be a list of argument lists like "
                                 f"{example}, not {_toml_type(value)}")
            return ()
        commands = []
        for i, command in enumerate(value):
            where = f"{prefix}{key}[{i}]"
            if isinstance(command, str):
                self.problems.append(f"{where}: must be an argument list like {example[1:-1]}, "
                                     "not a string (for a shell, write [\"sh\", \"-c\", \"...\"])")
            elif not isinstance(command, list):
                self.problems.append(f"{where}: must be an argument list, not "
                                     f"{_toml_type(command)}")
            elif not command:
                self.problems.append(f"{where}: is empty; name a program")
            else:
                bad = [j for j, arg in enumerate(command) if not isinstance(arg, str)]
                for j in bad:
                    self.problems.append(f"{where}[{j}]: must be a string, not "
                                         f"{_toml_type(command[j])}")
                if not bad and not command[0]:
                    self.problems.append(f"{where}[0]: must name a program")
                elif not bad:
                    commands.append(tuple(command))
        return tuple(commands)

    def _monitoring(self, raw: object) -> Monitoring:
        table = self._table(raw, "monitoring", {"ping_url"})
        url = self._string(table, "ping_url", "", "monitoring.")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.problems.append(f"monitoring.ping_url: {url!r} is not an http:// or "
                                     "https:// URL")
                url = ""
        return Monitoring(ping_url=url)

    def _encryption(self, raw: object) -> Encryption:
        table = self._table(raw, "encryption", {"mode", "passphrase_file", "gpg_key"})
        mode = self._choice(table, "mode", list(ENCRYPTION_MODES), "passphrase", "encryption.")
        passphrase_file = self._path(table, "passphrase_file", prefix="encryption.")
        gpg_key = self._string(table, "gpg_key", "", "encryption.")
        if mode == "passphrase" and passphrase_file is None:
            self.problems.append("encryption.passphrase_file: required when mode = \"passphrase\"")
        if mode == "gpg-key" and not gpg_key:
            self.problems.append("encryption.gpg_key: required when mode = \"gpg-key\"")
        return Encryption(mode=mode, passphrase_file=passphrase_file, gpg_key=gpg_key)

    def _trim(self, raw: object) -> Trim:
        keys = {"auto", "keep"} | {f"keep_{kind}" for kind in TRIMMED_KINDS}
        table = self._table(raw, "trim", keys)
        auto = self._bool(table, "auto", True, "trim.")
        keep = self._int(table, "keep", 2, 1, "trim.")
        by_kind = {}
        for kind in TRIMMED_KINDS:
            if f"keep_{kind}" in table:
                by_kind[kind] = self._int(table, f"keep_{kind}", keep, 1, "trim.")
        return Trim(auto=auto, keep=keep, keep_by_kind=by_kind)

    def _archive(self, raw: object) -> Archive:
        defaults = Archive()
        table = self._table(raw, "archive", {
            "bucket", "prefix", "endpoint_url", "region", "storage_class", "bag_size",
            "min_age_days", "auto", "keep_years", "cadence", "prune",
        })
        p = "archive."
        bag_size = defaults.bag_size
        if "bag_size" in table:
            value = table["bag_size"]
            size = value if isinstance(value, int) and not isinstance(value, bool) else (
                parse_size(value) if isinstance(value, str) else None)
            if size is None or not 5 * 2**20 <= size <= MAX_BAG:
                self.problems.append(
                    f"archive.bag_size: {value!r} is not a size from 5 MiB to 5 TB "
                    "(like \"40GB\")")
            else:
                bag_size = size
        return Archive(
            bucket=self._string(table, "bucket", "", p),
            prefix=self._string(table, "prefix", "", p).strip("/"),
            endpoint_url=self._string(table, "endpoint_url", "", p),
            region=self._string(table, "region", defaults.region, p),
            storage_class=self._choice(table, "storage_class", list(STORAGE_CLASSES),
                                       defaults.storage_class, p),
            bag_size=bag_size,
            min_age_days=self._int(table, "min_age_days", defaults.min_age_days, 0, p),
            auto=self._bool(table, "auto", True, p),
            keep_years=self._int(table, "keep_years", 0, 0, p),
            cadence=self._choice(table, "cadence", list(CADENCES), defaults.cadence, p),
            prune=self._bool(table, "prune", True, p),
        )

    # -- typed getters: each records a problem and returns a usable default --

    def _table(self, raw: object, name: str, allowed: set[str]) -> dict:
        if not isinstance(raw, dict):
            self.problems.append(f"{name}: must be a table")
            return {}
        prefix = f"{name}." if name else ""
        for key in sorted(set(raw) - allowed):
            self.problems.append(f"{prefix}{key}: unknown key")
        return raw

    def _string(self, table: dict, key: str, default: str, prefix: str = "") -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            self.problems.append(f"{prefix}{key}: must be a string, not {_toml_type(value)}")
            return default
        return value

    def _strings(self, table: dict, key: str, required: bool = False) -> list[str]:
        if key not in table:
            if required:
                self.problems.append(f"{key}: missing")
            return []
        value = table[key]
        if not isinstance(value, list):
            self.problems.append(f"{key}: must be a list of strings (like [\"a\", \"b\"]), "
                                 f"not {_toml_type(value)}")
            return []
        wrong = [i for i, v in enumerate(value) if not isinstance(v, str)]
        if wrong:
            self.problems.append(f"{key}[{wrong[0]}]: must be a string, not "
                                 f"{_toml_type(value[wrong[0]])}")
            return []
        return value

    def _bool(self, table: dict, key: str, default: bool, prefix: str) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.problems.append(f"{prefix}{key}: must be true or false, not {_toml_type(value)}")
            return default
        return value

    def _int(self, table: dict, key: str, default: int, minimum: int, prefix: str) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.problems.append(f"{prefix}{key}: must be a whole number >= {minimum}, "
                                 f"not {value!r}")
            return default
        return value

    def _choice(self, table: dict, key: str, choices: list[str], default: str,
                prefix: str = "") -> str:
        value = self._string(table, key, default, prefix)
        if value not in choices:
            self.problems.append(f"{prefix}{key}: must be one of {', '.join(choices)}, "
                                 f"not {value!r}")
            return default
        return value

    def _path(self, table: dict, key: str, required: bool = False, prefix: str = "") -> Path | None:
        if key not in table:
            if required:
                self.problems.append(f"{prefix}{key}: missing")
            return None
        value = table[key]
        if value == "" and not required:
            return None
        if not isinstance(value, str) or not value:
            self.problems.append(f"{prefix}{key}: must be a path")
            return None
        return self._resolve(value)

    def _path_item(self, value: str, key: str) -> Path:
        if not value:
            self.problems.append(f"{key}: must be a path")
        return self._resolve(value)

    def _resolve(self, value: str) -> Path:
        """Absolute path; ``~`` expanded, relative paths taken from the config file's folder."""
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.path.parent.resolve() / path
        return Path(os.path.normpath(path))


def _toml_type(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def absolute(path: Path) -> Path:
    """``path`` with ``~`` expanded, made absolute against the working directory."""
    return Path(os.path.abspath(path.expanduser()))


def toml_string(value: str) -> str:
    """Quote a string as a TOML basic string.

    JSON's escapes are a subset of TOML's; JSON leaves DEL bare, which TOML forbids.
    """
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def read_passphrase(settings: Settings) -> str | None:
    """Return what duplicity gets as ``PASSPHRASE``, or None when it needs none.

    In passphrase mode that is the symmetric passphrase. In gpg-key mode it is the
    secret key's passphrase from ``passphrase_file`` if one is set, else empty (a key
    without a passphrase, or one gpg-agent holds): duplicity must decrypt the base
    chain's signatures whenever a new level starts. Raise ConfigError if the file is
    missing, empty, or readable by others.
    """
    mode = settings.encryption.mode
    path = settings.encryption.passphrase_file
    if mode == "none":
        return None
    if mode == "gpg-key" and path is None:
        return ""
    assert path is not None  # validated
    check_private(path, "passphrase file")
    try:
        passphrase = path.read_text(encoding="utf-8").strip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read passphrase file {path}: {error}") from None
    if not passphrase:
        raise ConfigError(f"passphrase file {path} is empty",
                          "restore it from your safe copy")
    return passphrase
