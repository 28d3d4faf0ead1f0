"""5. Cost model: ten years of Deep Archive bills for cya's bags against duplicity's own
``--s3-use-deep-archive`` (monthly fulls, one object per volume; chains kept, or
removed by ``remove-all-but-n-full 2``), for a 1 TB source.

Sizes are measured, then scaled: real duplicity makes a full of the benchmark source
and incrementals after 1, 7, 30 and 90 days of its daily churn; each incremental's
size as a fraction of the full (interpolated by span) sizes every simulated backup.
The ten years run day by day through cya's own pure code: placement
(core.placement), trim (core.retention), finished years and bag plans
(core.bagging); prices from core.costs (dated). Duplicity's uploads are modelled as
its boto3 backend makes them: volumes and signatures in Deep Archive, manifests in
Standard, multipart in 8 MB parts.
"""

from __future__ import annotations

import bisect
import math
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import Source, duplicity_backup, fresh, noon
from cya.core import costs
from cya.core.bagging import YearFile, part_size, plan_bags
from cya.core.names import complete_backup_times, format_time, parse_name
from cya.core.placement import plan_placement
from cya.core.retention import finished_years, plan_trim
from cya.core.timescale import leaf_for
from cya.core.treeview import TreeView

VOLUME = 200 * 10**6
TB = 10**12
BOTO_PART = 8 * 2**20  # s3transfer's default multipart chunk, as duplicity uploads
BAG_SIZE = 40 * 10**9


def measure(work: Path, seed: int, quick: bool) -> dict:
    """Real duplicity: the full, and incrementals after growing spans of daily churn."""
    work = fresh(work / "measure")
    source = Source(work / "source", seed, 1000 if quick else 2000)
    target = work / "chain"
    day = date(2012, 1, 1)
    duplicity_backup(target, source.root, day, work, "cost")
    sizes = _set_sizes(target)
    full = sizes[format_time(noon(day))]
    ratios = {}
    for span in (1, 7, 30) if quick else (1, 7, 30, 90):
        for _ in range(span):
            source.churn()
        day += timedelta(days=span)
        duplicity_backup(target, source.root, day, work, "cost")
        ratios[span] = _set_sizes(target)[format_time(noon(day))]["total"] / full["total"]
    return {"full_bytes": full["total"], "signature_fraction": full["signatures"] / full["total"],
            "inc_ratio_by_span_days": ratios}


def _set_sizes(target: Path) -> dict[str, dict[str, int]]:
    sizes: dict[str, dict[str, int]] = {}
    for path in target.iterdir():
        parsed = parse_name(path.name)
        if parsed:
            entry = sizes.setdefault(format_time(parsed.end), {"total": 0, "signatures": 0})
            entry["total"] += path.stat().st_size
            entry[parsed.role] = entry.get(parsed.role, 0) + path.stat().st_size
    return sizes


class SizeModel:
    """Bytes of a backup set spanning ``days`` since its parent, for a full of ``full``."""

    def __init__(self, measured: dict, full: int):
        self.full = full
        self.signatures = measured["signature_fraction"]
        points = sorted((int(k), v) for k, v in measured["inc_ratio_by_span_days"].items())
        self.spans = [0] + [p[0] for p in points]
        self.ratios = [0.0] + [p[1] for p in points]

    def ratio(self, days: float) -> float:
        if days >= self.spans[-1]:
            slope = (self.ratios[-1] - self.ratios[-2]) / (self.spans[-1] - self.spans[-2])
            return min(1.0, self.ratios[-1] + slope * (days - self.spans[-1]))
        i = bisect.bisect_right(self.spans, days)
        left, right = self.spans[i - 1], self.spans[i]
        share = (days - left) / (right - left)
        return self.ratios[i - 1] + share * (self.ratios[i] - self.ratios[i - 1])

    def set_files(self, time, previous, split: bool = True) -> dict[str, int]:
        """Duplicity file names and sizes of the set made at ``time`` (a full if no
        ``previous``): 200 MB volumes (one volume of it all unless ``split``), a
        signature file, a manifest."""
        total = self.full if previous is None else \
            self.full * self.ratio((time - previous).total_seconds() / 86400)
        signatures = int(total * self.signatures)
        data = int(total) - signatures
        volumes = max(1, math.ceil(data / VOLUME)) if split else 1
        stamp = format_time(time)
        if previous is None:
            kind, sig, span = "full", "full-signatures", stamp
        else:
            kind, sig, span = "inc", "new-signatures", f"{format_time(previous)}.to.{stamp}"
        files = {f"duplicity-{kind}.{span}.vol{n}.difftar.gpg":
                 min(VOLUME, data - (n - 1) * VOLUME) if split else data
                 for n in range(1, volumes + 1)}
        files[f"duplicity-{sig}.{span}.sigtar.gpg"] = signatures
        files[f"duplicity-{kind}.{span}.manifest.gpg"] = 300 * volumes + 1000
        return files


def simulate_cya(model: SizeModel, days: int, start: date) -> dict:
    """Ten years of daily cya backups (names and sizes in memory), trimmed weekly,
    each finished year bagged when the next begins. Return the bags made, by month.

    A set's volumes are kept as one file here (thousands of 200 MB names per full
    would make the day-by-day run slow); a bag of one such file larger than a bag
    counts as the bags its 200 MB volumes would fill.
    """
    files: dict = {}
    sizes: dict[str, int] = {}
    newest = None
    archived: dict[str, int] = {}
    archived_years: set = set()
    bags: list[dict] = []  # {"month", "bytes", "parts"}
    for number in range(days):
        time = noon(start + timedelta(days=number))
        leaf = leaf_for(time.date())
        view = TreeView({level: frozenset(names) for level, names in files.items()})
        placement = plan_placement(time, leaf, view.chained(), newest)
        base = set(files.get(placement.base, ())) if placement.base else set()
        previous = max(complete_backup_times(base), default=None)
        made = model.set_files(time, previous, split=False)
        sizes.update(made)
        for level in placement.new_levels:
            files[level] = set(base)
        for level in placement.link_into:
            files[level] |= set(made)
        newest = time
        if time.weekday() != 6:
            continue
        view = TreeView({level: frozenset(names) for level, names in files.items()})
        for year in finished_years(view):
            if year in archived_years:
                continue
            year_files = [YearFile(f"{level.relpath}/files/{name}", sizes[name])
                          for level, names in files.items()
                          if level == year or year.is_ancestor_of(level) for name in names]
            plan = plan_bags(year.relpath, year_files, archived, BAG_SIZE)
            for bag in plan.bags:
                archived.update({b.name: b.size for b in bag.blobs})
                count = max(1, math.ceil(bag.estimated_bytes / BAG_SIZE))
                size = bag.estimated_bytes // count
                bags += [{"month": number // 30, "bytes": size,
                          "parts": math.ceil(size / part_size(size))}] * count
            archived_years.add(year)
        awaiting = [y for y in finished_years(view) if y not in archived_years]
        trim = plan_trim(view.levels(), view.chained(), lambda kind: 2, [leaf], awaiting)
        for decision in trim.delete:
            for level in list(files):
                if level == decision.level or decision.level.is_ancestor_of(level):
                    del files[level]
    return {"bags": bags, "local_bytes": sum(sizes[n] for n in {n for v in files.values()
                                                                 for n in v})}


def simulate_duplicity(model: SizeModel, days: int, keep_fulls: int | None) -> list[dict]:
    """Daily duplicity to S3 with ``--full-if-older-than 1M``: every object it uploads,
    with the day it was made and (for keep_fulls) the day it was removed."""
    objects: list[dict] = []
    chains: list[list[dict]] = []
    previous = None
    last_full = None
    start = date(2016, 1, 1)
    for number in range(days):
        time = noon(start + timedelta(days=number))
        full = last_full is None or (time - last_full).days >= 30
        made = model.set_files(time, None if full else previous)
        if full:
            last_full = time
            chains.append([])
            if keep_fulls is not None:
                for old in chains[:-keep_fulls]:
                    for item in old:
                        item["deleted"] = number
                chains = chains[-keep_fulls:]
        for name, size in made.items():
            item = {"day": number, "bytes": size, "standard": ".manifest" in name,
                    "requests": 1 if size <= BOTO_PART else math.ceil(size / BOTO_PART) + 2}
            objects.append(item)
            chains[-1].append(item)
        previous = time
    return objects


def bill_duplicity(objects: list[dict], days: int, prices: costs.Prices) -> dict:
    storage = early = 0.0
    requests = standard_requests = 0
    for item in objects:
        alive = item.get("deleted", days) - item["day"]
        months = alive / costs.DAYS_PER_MONTH
        if item["standard"]:
            storage += item["bytes"] / costs.GB * prices.standard_gb_month * months
            standard_requests += item["requests"]
            continue
        storage += costs.storage_month(prices, item["bytes"], 1) * months
        requests += item["requests"]
        if "deleted" in item:
            early += costs.early_deletion(prices, item["bytes"], 1, alive)
    return _bill(storage, costs.request_cost(prices, requests, standard_requests), early,
                 len(objects), sum(o["bytes"] for o in objects if "deleted" not in o))


def bill_cya(bags: list[dict], days: int, prices: costs.Prices) -> dict:
    months_total = days / costs.DAYS_PER_MONTH
    storage = sum(costs.storage_month(prices, b["bytes"], 1) * (months_total - b["month"])
                  for b in bags)
    # each bag: its multipart requests; plus its manifest, the year index and system/
    requests = sum(costs.upload_requests(b["parts"]) for b in bags)
    standard = 2 * len(bags) + 3 * len({b["month"] for b in bags})
    return _bill(storage, costs.request_cost(prices, requests, standard), 0.0, len(bags),
                 sum(b["bytes"] for b in bags))


def _bill(storage: float, requests: float, early: float, objects: int, kept: int) -> dict:
    return {"storage_usd": round(storage, 2), "requests_usd": round(requests, 2),
            "early_deletion_usd": round(early, 2),
            "total_usd": round(storage + requests + early, 2),
            "objects_uploaded": objects, "bytes_kept_at_end_TB": round(kept / TB, 2)}


def run(work: Path, quick: bool, seed: int) -> dict:
    measured = measure(work / "cost", seed, quick)
    model = SizeModel(measured, TB)
    days = 3650
    prices = costs.Prices()
    cya = simulate_cya(model, days, date(2016, 1, 1))
    result = {
        "data": f"a 1 TB source for 10 years, daily backups; incremental sizes measured with "
                f"real duplicity on the benchmark source and scaled; prices as of {prices.as_of}",
        "measured": {"full_bytes": measured["full_bytes"],
                     "inc_ratio_by_span_days": {k: round(v, 4) for k, v in
                                                measured["inc_ratio_by_span_days"].items()}},
        "cya_bags": bill_cya(cya["bags"], days, prices),
        "duplicity_deep_archive_keep_all": bill_duplicity(
            simulate_duplicity(model, days, None), days, prices),
        "duplicity_deep_archive_keep_2_fulls": bill_duplicity(
            simulate_duplicity(model, days, 2), days, prices),
    }
    result["cya_vs_duplicity_keep_all"] = round(
        result["cya_bags"]["total_usd"] / result["duplicity_deep_archive_keep_all"]["total_usd"], 3)
    result["cya_usd_per_TB_month_at_end"] = round(
        costs.storage_month(prices, int(result["cya_bags"]["bytes_kept_at_end_TB"] * TB),
                            result["cya_bags"]["objects_uploaded"])
        / max(result["cya_bags"]["bytes_kept_at_end_TB"], 1e-9), 3)
    return result
