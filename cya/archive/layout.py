"""Where each object lives in the bucket, relative to the prefix (DESIGN.md 4).

    bags/GROUP/DIGEST.tar         Deep Archive: a tar of whole duplicity files
    manifests/GROUP/DIGEST.json   Standard: members, offsets, sizes, SHA-256 of that bag
    backups/TIME.json             Standard: an archived backup's whole chain (restorable alone)
    indexes/TIME.gpg              Standard: that backup's file index, encrypted
    years/YEAR.json               Standard: a finished year as the tree held it
    system/catalog.sqlite         Standard: the catalog, without the file index and sources
    system/config.toml.gpg        Standard: the config, encrypted (it names the sources)
    system/setup.json             Standard: how the tree is encrypted (no secret, no names)

GROUP is the year a bag was made in. (Archives made before records existed have
``system/config.toml`` in plain text; ``cya recover`` reads either.)
"""

from __future__ import annotations

SYSTEM_CATALOG = "system/catalog.sqlite"
SYSTEM_CONFIG_KEY = "system/config.toml.gpg"
SYSTEM_CONFIG_PLAIN = "system/config.toml"  # written by earlier versions
SYSTEM_SETUP = "system/setup.json"
BAGS, MANIFESTS, YEARS = "bags/", "manifests/", "years/"
BACKUPS, INDEXES = "backups/", "indexes/"
PREFIXES = (BAGS, MANIFESTS, YEARS, BACKUPS, INDEXES)


def bag(group: str, digest: str) -> str:
    return f"{BAGS}{group}/{digest[:24]}.tar"


def manifest_of(bag_key: str) -> str:
    """The manifest's key of a bag's key (both relative to the prefix)."""
    return MANIFESTS + bag_key.removeprefix(BAGS).removesuffix(".tar") + ".json"


def year_index(year_name: str) -> str:
    return f"{YEARS}{year_name}.json"


def backup_record(time: str) -> str:
    return f"{BACKUPS}{time}.json"


def backup_index(time: str) -> str:
    return f"{INDEXES}{time}.gpg"
