"""``cya init``: write the config (0600), make the tree (0700), generate a passphrase.

Nothing is written until every check passed. An existing passphrase file is
never overwritten: losing it would make every backup made with it unreadable.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cya.catalog import Catalog
from cya.config import absolute, check_private, load, toml_string
from cya.errors import UsageError
from cya.fsutil import atomic_write, fsync_dir, make_private_dir
from cya.tree import STATE, Tree


@dataclass(frozen=True)
class InitRequest:
    config_path: Path
    sources: tuple[Path, ...]
    tree: Path
    passphrase_file: Path | None = None
    gpg_key: str = ""
    no_encryption: bool = False
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    force: bool = False


@dataclass
class InitResult:
    config_path: Path
    tree: Path
    mode: str
    passphrase_file: Path | None
    generated: bool
    warnings: list[str] = field(default_factory=list)


def run(request: InitRequest) -> InitResult:
    problems = _check(request)
    if problems:
        raise UsageError("; ".join(problems), "nothing was written")
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
    tree = Tree(request.tree)
    tree.create()
    Catalog(tree.catalog_path).close()
    make_private_dir(request.config_path.parent)
    atomic_write(request.config_path, _render(request, mode, passphrase_file).encode())
    load(request.config_path)  # what init writes must load
    result = InitResult(request.config_path, request.tree, mode, passphrase_file, generated)
    if mode == "none":
        result.warnings.append("backups will not be encrypted: anyone who can read the tree "
                               "or the bucket can read every backed-up file")
    return result


def _check(request: InitRequest) -> list[str]:
    problems = []
    if request.no_encryption and (request.passphrase_file or request.gpg_key):
        problems.append("--no-encryption does not go with --passphrase-file or --gpg-key")
    if request.gpg_key and request.passphrase_file and not request.passphrase_file.exists():
        problems.append(f"passphrase file {request.passphrase_file} (the gpg key's passphrase) "
                        "does not exist")
    if request.config_path.exists() and not request.force:
        problems.append(f"config {request.config_path} already exists (use --force to replace it)")
    for source in request.sources:
        if not source.exists():
            problems.append(f"source {source} does not exist")
    tree = request.tree
    if tree.exists():
        if not tree.is_dir():
            problems.append(f"tree {tree} is not a directory")
        elif any(tree.iterdir()) and not (tree / STATE).is_dir():
            problems.append(f"tree {tree} is a non-empty directory that is not a cya tree; "
                            "choose an empty or new directory")
    for source in request.sources:
        if source == tree or source.is_relative_to(tree):
            problems.append(f"source {source} is inside the tree {tree}")
    return problems


def _write_new_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def _render(request: InitRequest, mode: str, passphrase_file: Path | None) -> str:
    q = toml_string
    sources = ", ".join(q(str(s)) for s in request.sources)
    return f"""\
# cya configuration (written by cya init). Reference: README.rst, "Configuration".

tree = {q(str(request.tree))}
sources = [{sources}]
exclude = []                      # duplicity glob syntax, e.g. "**/.cache"
week_start = "sunday"             # or "monday"
duplicity_options = []            # passed through to every duplicity backup

[encryption]
mode = {q(mode)}                  # passphrase | gpg-key | none
passphrase_file = {q(str(passphrase_file or ""))}
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
"""
