"""``cya config validate``: the config checked as every command would load it, without
needing the tree and without creating or changing anything.

Every problem is reported, each on its own line, not just the first:

* the file: missing, not a regular file, or readable or writable by others (with the
  ``chmod`` that fixes it);
* TOML syntax: where (line, column) and what, never a suggestion to overwrite the file;
* every key, by its key path (config._Validator: unknown keys, wrong types, an unknown
  ``archive.storage_class``, ...);
* the passphrase file the config names: missing, empty, or readable by others;
* ``duplicity_options`` a backup refuses (duplicity.refused_options): what cya sets
  itself, and what would make a backup other than cya records and reports.

What is not wrong but worth knowing is a note: a tree that does not exist yet (``cya
init`` makes it), sources that do not exist on this machine, a bucket that was not
contacted. Nothing here starts a process or opens the network.
"""

from __future__ import annotations

import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cya import config, duplicity
from cya.errors import ConfigError
from cya.opentree import unopened

_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


@dataclass(frozen=True)
class Validation:
    config: Path
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {"version": 1, "config": str(self.config), "valid": self.valid,
                "problems": list(self.problems), "notes": list(self.notes)}


def run(explicit: str | None) -> Validation:
    """Validate the config the lookup order finds (``explicit``: --config). Raise
    ConfigError only when no config file is found at all."""
    path = config.find_config(explicit)
    problems: list[str] = []
    if not path.exists():
        return Validation(path, (f"config file {path} does not exist",))
    problems += _private(path, "config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return Validation(path, (*problems, f"cannot read config file {path}: {error}"))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return Validation(path, (*problems, syntax_error(path, text, error)))
    except RecursionError:
        return Validation(path, (*problems, f"config file {path} nests too deeply to be a "
                                            "cya config"))
    validator = config._Validator(path)
    try:
        settings = validator.settings(raw)
    except ConfigError:
        return Validation(path, (*problems, *validator.problems))
    problems += _passphrase(settings)
    problems += duplicity.refused_options(settings.duplicity_options,
                                          settings.encryption.mode)
    return Validation(path, tuple(problems), tuple(_notes(settings)))


def syntax_error(path: Path, text: str, error: tomllib.TOMLDecodeError) -> str:
    """Where a TOML syntax error is (line, column) and what it is."""
    message = str(error)
    match = _WHERE.search(message)
    if match:
        line, column = int(match[1]), int(match[2])
        message = message[:match.start()]
    else:
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
        message = _AT_END.sub("", message) + " (at the end of the file)"
    return f"{path}, line {line}, column {column}: TOML syntax error: {message}"


def _private(path: Path, what: str) -> list[str]:
    """A file that holds or leads to secrets: regular, and only its owner's."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return [f"{what} {path} does not exist"]
    except OSError as error:
        return [f"cannot read {what} {path}: {error.strerror}"]
    if not stat.S_ISREG(info.st_mode):
        return [f"{what} {path} is not a regular file"]
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return [f"{what} {path} is readable or writable by others (mode {mode:04o}); "
                f"run: chmod 600 {path}"]
    return []


def _passphrase(settings: config.Settings) -> list[str]:
    path = settings.encryption.passphrase_file
    if settings.encryption.mode == "none" or path is None:
        return []
    where = "encryption.passphrase_file: "
    problems = [where + p for p in _private(path, "passphrase file")]
    if problems:
        return problems
    try:
        if not path.read_text(encoding="utf-8").strip("\r\n"):
            return [f"{where}passphrase file {path} is empty; restore it from your safe copy"]
    except (OSError, UnicodeDecodeError) as error:
        return [f"{where}cannot read passphrase file {path}: {error}"]
    return []


def _notes(settings: config.Settings) -> list[str]:
    notes = []
    tree = unopened(settings)
    if not settings.tree.exists():
        notes.append(f"the tree {settings.tree} does not exist yet (cya init makes it; or is "
                     "its disk not mounted?)")
    elif not tree.state.is_dir():
        notes.append(f"the tree {settings.tree} exists but holds no cya state yet"
                     + (" (it holds backups: cya init --adopt takes it over)"
                        if tree.has_levels() else " (cya init makes it)"))
    for source in settings.sources:
        if not source.exists():
            notes.append(f"the source {source} does not exist on this machine")
    if settings.archive.enabled:
        notes.append(f"the bucket {settings.archive.bucket} was not contacted (cya archive "
                     "setup checks it)")
    return notes
