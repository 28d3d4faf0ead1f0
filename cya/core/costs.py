"""What the archive costs: storage, requests, retrieval, early deletion (DESIGN.md 4).

Prices are us-east-1 list prices with the date they were read (``Prices.as_of``).
Every estimate cya prints before a thaw or a prune comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 10**9
DAYS_PER_MONTH = 30.0


@dataclass(frozen=True)
class Prices:
    as_of: str = "2026-01"
    storage_gb_month: float = 0.00099  # Deep Archive
    standard_gb_month: float = 0.023  # S3 Standard (manifests, system/, the 8 KB overhead)
    put_per_1000: float = 0.05  # PUT, COPY, POST, LIST into Deep Archive
    standard_put_per_1000: float = 0.005
    retrieval_gb: tuple[tuple[str, float], ...] = (("standard", 0.02), ("bulk", 0.0025))
    retrieval_per_1000: tuple[tuple[str, float], ...] = (("standard", 0.10), ("bulk", 0.025))
    retrieval_hours: tuple[tuple[str, int], ...] = (("standard", 12), ("bulk", 48))
    egress_gb: float = 0.09
    get_per_1000: float = 0.0004
    overhead_archive_bytes: int = 32 * 1024  # billed per object at Deep Archive rates
    overhead_standard_bytes: int = 8 * 1024  # billed per object at Standard rates
    minimum_days: int = 180

    def tier(self, table: tuple[tuple[str, float], ...], tier: str) -> float:
        return dict(table)[tier]


def storage_month(prices: Prices, data_bytes: int, objects: int) -> float:
    """Dollars per month to keep ``data_bytes`` in ``objects`` Deep Archive objects."""
    archive = data_bytes + objects * prices.overhead_archive_bytes
    return (archive / GB * prices.storage_gb_month
            + objects * prices.overhead_standard_bytes / GB * prices.standard_gb_month)


def upload_requests(parts: int) -> int:
    """Requests one multipart upload makes: create, each part, complete."""
    return parts + 2


def request_cost(prices: Prices, archive_requests: int, standard_requests: int = 0) -> float:
    return (archive_requests / 1000 * prices.put_per_1000
            + standard_requests / 1000 * prices.standard_put_per_1000)


def early_deletion(prices: Prices, data_bytes: int, objects: int, age_days: float) -> float:
    """What deleting objects of this age costs beyond their storage so far: Deep Archive
    bills every object for ``minimum_days``."""
    remaining = max(0.0, prices.minimum_days - age_days)
    return storage_month(prices, data_bytes, objects) * remaining / DAYS_PER_MONTH


@dataclass(frozen=True)
class RetrievalEstimate:
    tier: str
    objects: int
    thawed_bytes: int  # whole objects are thawed (and billed)
    fetched_bytes: int  # only the members needed are downloaded
    dollars: float
    hours: int


def retrieval(prices: Prices, tier: str, objects: int, thawed_bytes: int,
              fetched_bytes: int, ranged_gets: int) -> RetrievalEstimate:
    """The cost and wait of thawing ``objects`` (``thawed_bytes``) and fetching
    ``fetched_bytes`` of them in ``ranged_gets`` requests."""
    dollars = (thawed_bytes / GB * prices.tier(prices.retrieval_gb, tier)
               + objects / 1000 * prices.tier(prices.retrieval_per_1000, tier)
               + fetched_bytes / GB * prices.egress_gb
               + ranged_gets / 1000 * prices.get_per_1000)
    return RetrievalEstimate(tier, objects, thawed_bytes, fetched_bytes, dollars,
                             int(prices.tier(prices.retrieval_hours, tier)))
