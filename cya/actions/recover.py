"""``cya recover --bucket B --tree DIR``: after losing the machine, rebuild the config
and the catalog from the bucket, so ``restore --from-archive`` works again.

What the bucket holds (DESIGN.md 4): ``system/config.toml`` and
``system/catalog.sqlite`` (a copy after every archive run, without the file index),
a manifest per bag and an index per archived year. The catalog copy is the start;
any year whose index is in the bucket but not in that copy (an archive run that
died before its system copy) is added from its index and its bags' manifests, so
every archived year is found even when the copy is missing altogether.

Nothing is written until the bucket was read: the config (0600) last, so a failed
recover leaves no config pointing at a half-made tree.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cya.archive import layout
from cya.archive.s3 import Remote
from cya.catalog import BagRecord, BlobRecord, Catalog, YearRecord
from cya.config import Archive, absolute, load, toml_string
from cya.errors import ArchiveError, UsageError
from cya.fsutil import atomic_write, make_private_dir, remove_tree
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
    config_key = remote.key(layout.SYSTEM_CONFIG_KEY)
    old_config = remote.get_bytes(config_key)
    if old_config is None:
        raise ArchiveError(f"no cya archive in bucket {request.bucket} under prefix "
                           f"{request.prefix or '(none)'}: {config_key} is missing",
                           "check --bucket and --prefix")
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
            known = {y.year for y in catalog.archived_years()}
            for key in sorted(remote.list_keys(remote.key(layout.YEARS))):
                index = remote.get_json(key)
                if not isinstance(index, dict) or index.get("year") in known:
                    continue
                _add_year(catalog, remote, key, index)
                result.added_from_indexes.append(index["year"])
            result.years = [y.year for y in catalog.archived_years()]
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


def _add_year(catalog: Catalog, remote: Remote, index_key: str, index: dict) -> None:
    """Record a year (and any bag of it the catalog lacks) from its index and manifests."""
    have = {b.key for b in catalog.bags()}
    for bag_key in sorted({entry["bag"] for entry in index["files"].values()} - have):
        manifest_key = remote.key(layout.manifest_of(remote.relative(bag_key)))
        manifest = remote.get_json(manifest_key)
        if not isinstance(manifest, dict):
            raise ArchiveError(f"the manifest of {bag_key} is missing",
                               "run: cya archive verify on a machine with the tree")
        catalog.record_bag(
            BagRecord(bag_key, manifest["year"], manifest["digest"], manifest["size"],
                      manifest["parts"], manifest["checksum"], manifest["storage_class"],
                      manifest_key, manifest["uploaded_at"]),
            [BlobRecord(m["path"].rsplit("/", 1)[1], m["sha256"], m["size"], bag_key,
                        m["offset"], m["path"]) for m in manifest["members"]])
    files = {path: entry["name"] for path, entry in index["files"].items()}
    catalog.record_year(YearRecord(index["year"], index_key, len(files), 0,
                                   index.get("archived_at", "")), files)


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
