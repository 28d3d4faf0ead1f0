"""``cya init``: write the config (0600), make the tree (0700), generate a passphrase —
or, with ``--adopt``, take over a tree whose state is gone or damaged.

Nothing is written until every check passed. An existing passphrase file is
never overwritten: losing it would make every backup made with it unreadable.
A directory cya did not make keeps its mode, and a secret (config, passphrase) is
never put in a directory others can write: they could replace it.

``--adopt`` rebuilds the catalog from the tree's own file names (every duplicity
file name says which backup it belongs to): a damaged catalog is moved aside, never
deleted; a config that exists is used as it is (no ``--source``/``--tree`` needed).
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cya.catalog import BackupRecord, Catalog
from cya.clock import wall_time
from cya.config import Settings, absolute, check_private, load, toml_string
from cya.core.chains import restorable
from cya.core.names import format_time
from cya.core.remote import looks_remote, parse_remote
from cya.errors import CatalogError, UsageError
from cya.fsutil import atomic_write, fsync_dir, make_private_dir
from cya.opentree import unopened
from cya.tree import STATE, Tree


@dataclass(frozen=True)
class InitRequest:
    config_path: Path
    sources: tuple[Path, ...]
    tree: Path | None
    passphrase_file: Path | None = None
    gpg_key: str = ""
    no_encryption: bool = False
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    force: bool = False
    adopt: bool = False


@dataclass
class InitResult:
    config_path: Path
    tree: Path
    mode: str
    passphrase_file: Path | None
    generated: bool
    wrote_config: bool = True
    adopted: int | None = None  # backups found in an adopted tree
    set_aside: Path | None = None  # a damaged catalog moved aside
    warnings: list[str] = field(default_factory=list)


def run(request: InitRequest) -> InitResult:
    if request.adopt and request.config_path.exists() and not request.force \
            and not request.sources and request.tree is None:
        return _adopt_with_config(request)
    problems = _check(request)
    if problems:
        raise UsageError("; ".join(problems), "nothing was written")
    assert request.tree is not None  # checked
    mode = "none" if request.no_encryption else ("gpg-key" if request.gpg_key else "passphrase")
    passphrase_file = absolute(request.passphrase_file) if request.passphrase_file else None
    generated = False
    if passphrase_file and mode == "gpg-key":
        check_private(passphrase_file, "passphrase file")
    if mode == "passphrase":
        passphrase_file = absolute(request.passphrase_file or
                                    request.config_path.parent / "passphrase")
        if passphrase_file.exists():
            check_private(passphrase_file, "passphrase file")
        else:
            make_private_dir(passphrase_file.parent)
            _write_new_secret(passphrase_file, secrets.token_urlsafe(32) + "\n")
            generated = True
    text = _render(request, mode, passphrase_file)
    tree = Tree(request.tree)
    tree.create()
    result = InitResult(request.config_path, request.tree, mode, passphrase_file, generated)
    _prepare_catalog(tree, request.adopt, result)
    make_private_dir(request.config_path.parent)
    atomic_write(request.config_path, text.encode())
    load(request.config_path)  # what init writes must load
    if mode == "none":
        result.warnings.append("backups will not be encrypted: anyone who can read the tree "
                               "or the bucket can read every backed-up file")
    return result


def _adopt_with_config(request: InitRequest) -> InitResult:
    """``cya init --adopt`` with the config in place: rebuild the tree's state only."""
    settings = load(request.config_path)
    tree = unopened(settings)
    if not tree.root.is_dir():
        raise UsageError(f"the tree {tree.root} named in {settings.config_path} does not exist",
                         "is its disk mounted?")
    tree.create()
    result = InitResult(request.config_path, tree.root, settings.encryption.mode,
                        settings.encryption.passphrase_file, False, wrote_config=False)
    _prepare_catalog(tree, True, result)
    _warn_archive(settings, result)
    return result


def _warn_archive(settings: Settings, result: InitResult) -> None:
    if settings.archive.enabled:
        result.warnings.append("the archive's records were in the old catalog: run "
                               "cya archive verify, then cya archive (what the bucket holds "
                               "is found again, not uploaded twice)")


def _prepare_catalog(tree: Tree, adopt: bool, result: InitResult) -> None:
    """Keep a working catalog; make one for a new tree; with ``adopt``, rebuild a missing
    or damaged one from the tree (the damaged file moved aside)."""
    path = tree.catalog_path
    if path.exists():
        try:
            Catalog.open(path, write=True).close()
            return
        except CatalogError:
            if not adopt:
                raise
        result.set_aside = path.with_name(f"catalog.sqlite.damaged-{secrets.token_hex(3)}")
        os.rename(path, result.set_aside)
    with Catalog.create(path) as catalog:
        if adopt:
            result.adopted = _rebuild(tree, catalog)


def _rebuild(tree: Tree, catalog: Catalog) -> int:
    """Record every restorable backup of the tree from its file names; return how many.
    What names cannot say (start times, counts, the file index) stays unknown: ``ls
    --date`` then lists such backups with duplicity."""
    view = tree.scan()
    found = restorable(view)
    leaves = {s.time: level for level in view.levels() if level.is_leaf
              for s in view.backups(level)}
    now = wall_time()
    for backup in found:
        parent = backup.chain[-2].time if len(backup.chain) > 1 else None
        leaf = leaves.get(backup.time, backup.level)
        catalog.record_backup(BackupRecord(
            time=format_time(backup.time), leaf=leaf.relpath, base=None, full=backup.full,
            new_levels="", started_at=now, finished_at=now, source_files=None,
            source_bytes=None, new_bytes=None, unreadable=0,
            parent=format_time(parent) if parent else None))
    return len(found)


def _check(request: InitRequest) -> list[str]:
    problems = []
    if request.tree is None:
        problems.append("--tree DIR is missing" + (
            f" (and no config {request.config_path} to adopt with)" if request.adopt else ""))
    if not request.sources:
        problems.append("--source DIR is missing (give it once per directory)")
    if request.no_encryption and (request.passphrase_file or request.gpg_key):
        problems.append("--no-encryption does not go with --passphrase-file or --gpg-key")
    if request.gpg_key and request.passphrase_file and not request.passphrase_file.exists():
        problems.append(f"passphrase file {request.passphrase_file} (the gpg key's passphrase) "
                        "does not exist")
    if request.config_path.exists() and not request.force:
        problems.append(f"config {request.config_path} already exists (use --force to replace it)")
    for source in request.sources:
        if looks_remote(str(source)):
            try:
                parse_remote(str(source))
            except ValueError as error:
                problems.append(f"source {source}: {error}")
            continue
        if not source.exists():
            problems.append(f"source {source} does not exist")
        problems += _not_utf8(source, "source")
    if request.tree is not None:
        problems += _not_utf8(request.tree, "tree")
        problems += _tree_problems(request)
    secret_dirs = [request.config_path.parent]
    if request.passphrase_file is not None or not (request.no_encryption or request.gpg_key):
        secret_dirs.append(absolute(request.passphrase_file or
                                    request.config_path.parent / "passphrase").parent)
    for directory in dict.fromkeys(secret_dirs):
        problems += _shared_directory(directory)
    return problems


def _tree_problems(request: InitRequest) -> list[str]:
    problems = []
    tree = Tree(request.tree)
    if tree.root.exists():
        if not tree.root.is_dir():
            problems.append(f"tree {tree.root} is not a directory")
        elif tree.has_levels() and not (tree.catalog_path.is_file() or request.adopt):
            problems.append(f"tree {tree.root} holds backups but no catalog; to keep using "
                            "them add --adopt (the catalog is rebuilt from the tree)")
        elif any(tree.root.iterdir()) and not (tree.root / STATE).is_dir() \
                and not tree.has_levels():
            problems.append(f"tree {tree.root} is a non-empty directory that is not a cya "
                            "tree; choose an empty or new directory")
    for source in request.sources:
        if source == tree.root or source.is_relative_to(tree.root):
            problems.append(f"source {source} is inside the tree {tree.root}")
    return problems


def _shared_directory(directory: Path) -> list[str]:
    """A problem if an existing directory meant for a secret is writable by others."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    info = existing.stat()
    if stat.S_IMODE(info.st_mode) & 0o022:
        return [f"directory {existing} is writable by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): a secret kept there could be replaced; "
                f"choose a directory only you can write, or run: chmod go-w {existing}"]
    return []


def _not_utf8(path: Path, what: str) -> list[str]:
    try:
        os.fsencode(path).decode("utf-8")
        return []
    except UnicodeDecodeError:
        return [f"{what} {os.fsencode(path)!r} is not a UTF-8 name, which the config "
                "(TOML) cannot hold; rename it or use a symlink with a UTF-8 name"]


def _write_new_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def _toml_path(path: Path | None) -> str:
    """A path as a TOML string: its bytes read as UTF-8 (checked), whatever the locale."""
    return toml_string(os.fsencode(path).decode("utf-8") if path else "")


def _render(request: InitRequest, mode: str, passphrase_file: Path | None) -> str:
    q = toml_string
    sources = ", ".join(_toml_path(s) for s in request.sources)
    return f"""\
# cya configuration (written by cya init). Reference: README.rst, "Configuration".

tree = {_toml_path(request.tree)}
sources = [{sources}]
exclude = []                      # duplicity glob syntax, e.g. "**/.cache"
week_start = "sunday"             # or "monday"
duplicity_options = []            # passed through to every duplicity backup

[encryption]
mode = {q(mode)}                  # passphrase | gpg-key | none
passphrase_file = {_toml_path(passphrase_file)}
gpg_key = {q(request.gpg_key)}

[trim]
auto = true                       # trim after every backup
keep = 2                          # child levels kept per level
# keep_week = 2
# keep_month = 2
# keep_year = 2
# keep_decade = 2

[archive]
bucket = {q(request.bucket)}                       # empty: archiving off
prefix = {q(request.prefix)}
endpoint_url = {q(request.endpoint_url)}                 # empty: AWS
region = {q(request.region)}
storage_class = "DEEP_ARCHIVE"
bag_size = "40GB"
min_age_days = 180
auto = true
keep_years = 0                    # archived years kept remotely; 0 = all
cadence = "backup"                # backup | week | month | year: how soon files go off-site
prune = true                      # remote retention after every archive run
"""

