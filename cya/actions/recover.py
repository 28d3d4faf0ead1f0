"""``cya recover --bucket B --tree DIR``: after losing the machine, rebuild the config
and the catalog from the bucket, so ``restore --from-archive`` works again.

What the bucket holds (DESIGN.md 4): ``system/setup.json`` (how the tree is
encrypted), ``system/config.toml.gpg`` (the config, encrypted: it names the sources;
older archives have it plain), ``system/catalog.sqlite`` (a copy after every archive
run, without the file index), a manifest per bag, a record per archived backup and
per finished year. The catalog copy is the start; any backup or year whose record is
in the bucket but not in that copy (a run that died before its system copy) is added
from its record and its bags' manifests, so everything archived is found even when
the copy is missing altogether. Every record is checked before use (cya/archive/
records.py): a damaged or crafted one is reported and left out, never followed.

Nothing is written until the bucket was read: the config (0600) last, so a failed
recover leaves no config pointing at a half-made tree, and no half-made tree.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cya.archive import layout
from cya.archive.records import BackupPoint, BagManifest, RecordError, YearPoint
from cya.archive.s3 import Remote
from cya.catalog import BagRecord, BlobRecord, Catalog, PointRecord, YearRecord
from cya.config import (
    ENCRYPTION_MODES,
    Archive,
    Encryption,
    Settings,
    absolute,
    load,
    read_passphrase,
    toml_string,
)
from cya.errors import ArchiveError, UsageError
from cya.fsutil import atomic_write, make_private_dir, remove_tree
from cya.gpg import Gpg
from cya.tree import Tree


@dataclass(frozen=True)
class RecoverRequest:
    config_path: Path
    tree: Path
    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    passphrase_file: Path | None = None
    force: bool = False


@dataclass
class RecoverResult:
    config_path: Path
    tree: Path
    years: list[str]
    from_copy: bool  # the catalog copy in system/ was found
    added_from_indexes: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run(request: RecoverRequest) -> RecoverResult:
    if request.config_path.exists() and not request.force:
        raise UsageError(f"config {request.config_path} exists",
                         "recover with --config NEW.toml, or add --force to replace it")
    tree = Tree(absolute(request.tree))
    if tree.root.exists() and (not tree.root.is_dir() or any(tree.root.iterdir())):
        raise UsageError(f"{tree.root} is not an empty directory",
                         "give an empty or new directory as --tree")
    archive = Archive(bucket=request.bucket, prefix=request.prefix,
                      endpoint_url=request.endpoint_url, region=request.region)
    remote = Remote(archive)
    remote.check_bucket()
    config_key, old_config = _config_copy(remote, request)
    settings_text = _rewrite(_decode_config(old_config, config_key), request, tree.root)
    catalog_copy = remote.get_bytes(remote.key(layout.SYSTEM_CATALOG))
    made = not tree.root.exists()
    tree.create()
    result = RecoverResult(request.config_path, tree.root, [], catalog_copy is not None)
    try:
        if catalog_copy is not None:
            atomic_write(tree.catalog_path, catalog_copy)
            catalog = Catalog.open(tree.catalog_path, write=True)
        else:
            catalog = Catalog.create(tree.catalog_path)
        with catalog:
            _add_records(catalog, remote, result)
            result.years = [y.year for y in catalog.archived_years()]
            result.backups = [p.time for p in catalog.points()]
        if result.warnings and not (result.years or result.backups):
            raise ArchiveError("nothing in the bucket could be recovered: every record is "
                               f"damaged ({result.warnings[0].removeprefix('left out: ')})",
                               "nothing was written; run: cya archive verify on a machine "
                               "with the tree, or restore with plain tools (README)")
    except BaseException:
        # so that recover can simply run again
        remove_tree(tree.root if made else tree.state)
        raise
    make_private_dir(request.config_path.parent)
    atomic_write(request.config_path, settings_text.encode())
    settings = load(request.config_path)  # the rewritten config must be valid
    passphrase = settings.encryption.passphrase_file
    if settings.encryption.mode != "none" and passphrase is not None and not passphrase.exists():
        result.warnings.append(f"put your copy of the passphrase at {passphrase} (mode 0600), "
                               "or pass --passphrase-file: without it nothing restores")
    return result


def _decode_config(data: bytes, key: str) -> str:
    """The config copy's text; raise ArchiveError if it is not a readable TOML file."""
    try:
        text = data.decode("utf-8")
        tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as error:
        raise ArchiveError(f"the config copy {key} in the bucket is damaged "
                           f"({str(error).splitlines()[0][:120]})",
                           "recover with a config you kept: write it, then run cya init "
                           "--adopt; nothing was written") from None
    return text


def _config_copy(remote: Remote, request: RecoverRequest) -> tuple[str, bytes]:
    """The config copy's key and text (decrypted as ``system/setup.json`` says). Raise
    ArchiveError/UsageError saying what is missing."""
    setup = remote.get_json(remote.key(layout.SYSTEM_SETUP))
    if not isinstance(setup, dict):
        key = remote.key(layout.SYSTEM_CONFIG_PLAIN)  # an archive from before encryption
        data = remote.get_bytes(key)
        if data is None:
            raise ArchiveError(f"no cya archive in bucket {request.bucket} under prefix "
                               f"{request.prefix or '(none)'}: {remote.key(layout.SYSTEM_SETUP)}"
                               " is missing", "check --bucket and --prefix")
        return key, data
    mode = setup.get("encryption")
    if mode not in ENCRYPTION_MODES:
        raise ArchiveError(f"{remote.key(layout.SYSTEM_SETUP)} names no known encryption",
                           "the object is damaged")
    passphrase_file = absolute(request.passphrase_file) if request.passphrase_file else None
    if mode == "passphrase" and passphrase_file is None:
        raise UsageError("the archive is encrypted with a passphrase",
                         "give your copy of it: --passphrase-file FILE")
    settings = Settings(config_path=request.config_path, tree=request.tree, sources=(),
                        encryption=Encryption(mode, passphrase_file,
                                              str(setup.get("gpg_key") or "")))
    key = remote.key(layout.SYSTEM_CONFIG_KEY)
    data = remote.get_bytes(key)
    if data is None:
        raise ArchiveError(f"{key} is missing from the bucket",
                           "recover with a config you kept: write it, then run "
                           "cya init --adopt")
    with Gpg(settings, read_passphrase(settings)) as gpg:
        return key, gpg.decrypt(data)


def _add_records(catalog: Catalog, remote: Remote, result: RecoverResult) -> None:
    """Add every year and backup record the catalog copy lacks (checked; a bad one is a
    warning and is left out)."""
    years = {y.year for y in catalog.archived_years(state=None)}
    for key in sorted(remote.list_keys(remote.key(layout.YEARS))):
        try:
            point = YearPoint.parse(remote.get_json(key), key)
            if point.year in years:
                continue
            _add_bags(catalog, remote, {f.bag for f in point.files.values()})
            files = {path: stored.name for path, stored in point.files.items()}
            catalog.record_year(YearRecord(point.year, key, len(files), 0, point.archived_at),
                                files)
            result.added_from_indexes.append(point.year)
        except ArchiveError as error:
            result.warnings.append(f"left out: {error.message}")
    known = {p.time for p in catalog.points(state=None)}
    for key in sorted(remote.list_keys(remote.key(layout.BACKUPS))):
        try:
            backup = BackupPoint.parse(remote.get_json(key), key)
            if backup.time in known:
                continue
            _add_bags(catalog, remote, {f.bag for f in backup.chain})
            catalog.record_point(PointRecord(backup.time, backup.level, key, backup.index,
                                             backup.archived_at, "kept",
                                             tuple(sorted(f.name for f in backup.chain))))
        except ArchiveError as error:
            result.warnings.append(f"left out: {error.message}")


def _add_bags(catalog: Catalog, remote: Remote, keys: set[str]) -> None:
    """Record the bags among ``keys`` the catalog lacks, from their manifests (checked).
    Raise ArchiveError (RecordError) if one is missing or damaged."""
    have = {b.key for b in catalog.bags()}
    for bag_key in sorted(keys - have):
        manifest_key = remote.key(layout.manifest_of(remote.relative(bag_key)))
        data = remote.get_json(manifest_key)
        if data is None:
            raise ArchiveError(f"the manifest of {bag_key} is missing",
                               "run: cya archive verify on a machine with the tree")
        manifest = BagManifest.parse(data, manifest_key)
        if manifest.bag != bag_key:
            raise RecordError(f"{manifest_key} describes {manifest.bag}, not {bag_key}",
                              "the record is damaged or crafted; it was not used")
        catalog.record_bag(
            BagRecord(bag_key, manifest.group, manifest.digest, manifest.size,
                      manifest.parts, manifest.checksum, manifest.storage_class,
                      manifest_key, manifest.uploaded_at),
            [BlobRecord(m.name, m.sha256, m.size, bag_key, m.offset, m.path)
             for m in manifest.members])


def _rewrite(text: str, request: RecoverRequest, tree: Path) -> str:
    """The old config with the new tree, bucket settings and (if given) passphrase file."""
    changes = {("", "tree"): str(tree), ("archive", "bucket"): request.bucket,
               ("archive", "prefix"): request.prefix,
               ("archive", "endpoint_url"): request.endpoint_url,
               ("archive", "region"): request.region}
    if request.passphrase_file is not None:
        changes[("encryption", "passphrase_file")] = str(absolute(request.passphrase_file))
    section = ""
    lines = []
    for line in text.splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header:
            section = header.group(1).strip()
        match = re.match(r"\s*([A-Za-z_]+)\s*=", line)
        if match and (section, match.group(1)) in changes:
            line = f"{match.group(1)} = {toml_string(changes.pop((section, match.group(1))))}"
        lines.append(line)
    for (section, key), value in changes.items():  # keys the old config did not have
        entry = f"{key} = {toml_string(value)}"
        headers = [i for i, line in enumerate(lines)
                   if re.match(rf"\s*\[{re.escape(section)}\]\s*(#.*)?$", line)]
        if section == "":
            lines.insert(0, entry)
        elif headers:
            lines.insert(headers[0] + 1, entry)
        else:
            lines += [f"[{section}]", entry]
    return "\n".join(lines) + "\n"
