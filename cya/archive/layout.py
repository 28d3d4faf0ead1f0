"""Where each object lives in the bucket, relative to the prefix (DESIGN.md 4).

    bags/YEAR/DIGEST.tar         Deep Archive: the tar of a year's files
    manifests/YEAR/DIGEST.json   Standard: members, offsets, sizes, SHA-256 of that bag
    years/YEAR.json              Standard: every path of the year -> blob, bag, offset
    system/catalog.sqlite        Standard: the catalog without the file index
    system/config.toml           Standard: the config (it holds no secret)
"""

from __future__ import annotations

SYSTEM_CATALOG = "system/catalog.sqlite"
SYSTEM_CONFIG_KEY = "system/config.toml"
BAGS, MANIFESTS, YEARS = "bags/", "manifests/", "years/"
PREFIXES = (BAGS, MANIFESTS, YEARS)


def bag(year_name: str, digest: str) -> str:
    return f"{BAGS}{year_name}/{digest[:24]}.tar"


def manifest_of(bag_key: str) -> str:
    """The manifest's key of a bag's key (both relative to the prefix)."""
    return MANIFESTS + bag_key.removeprefix(BAGS).removesuffix(".tar") + ".json"


def year_index(year_name: str) -> str:
    return f"{YEARS}{year_name}.json"
