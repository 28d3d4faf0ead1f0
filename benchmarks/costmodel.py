"""5. Cost model: ten years of Deep Archive bills for cya's bags, once per
``archive.cadence`` ("backup", "week", "month", "year"), against duplicity's own
``--s3-use-deep-archive`` (monthly fulls, one object per volume; chains kept, or
removed by ``remove-all-but-n-full 2``), for a 1 TB source.

Sizes are measured, then scaled: real duplicity makes a full of the benchmark source
and incrementals after 1, 7, 30 and 90 days of its daily churn; each incremental's
size as a fraction of the full (interpolated by span) sizes every simulated backup.

The ten years run day by day through cya's own pure code, in the order ``cya backup``
runs (``CadenceRun``): placement (core.placement); the archive step — the levels the
cadence says are due (core.retention.eligible), their files not yet archived or pruned
bagged by core.bagging.plan_bags (a name is sent once, one bag per run unless 40 GB
fill), a record for every backup the bucket can now restore alone (core.chains) and
for every finished year; the remote retention (core.retention.keep_points and
plan_prune, cya's defaults: keep 2, keep_years 0, min_age_days 180) with the
deferred-deletion queue, a deleted bag's names never sent again; then the trim, which
keeps levels whose due files the bucket does not hold. Prices from core.costs
(dated).

Billed: Deep Archive storage of every bag for as long as it exists (with the per-object
32 KB + 8 KB), of which the *180-day tail* is what pruned bags cost between the day no
kept point needed them and their deletion; early deletion (none, since nothing goes
before 180 days); multipart requests; Standard PUTs (manifests, backup records and
their file indexes, year records, ``system/`` after a run that changed anything, one
LIST per run) and their storage (an index assumed ``INDEX_BYTES``); HEADs and GETs.
The off-site lag of a backup is the days from its run to the run that made its record
(what a lost machine costs at worst); backups the tree dropped before their period
ended never go off-site and are counted apart.

Duplicity's uploads are modelled as its boto3 backend makes them: volumes and
signatures in Deep Archive, manifests in Standard, multipart in 8 MB parts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import Source, duplicity_backup, fresh, noon
from cya.core import costs
from cya.core.bagging import YearFile, part_size, plan_bags
from cya.core.chains import restorable
from cya.core.names import complete_backup_times, format_time, parse_name
from cya.core.placement import plan_placement
from cya.core.retention import (
    CADENCES,
    Point,
    RemoteObject,
    awaiting_archive,
    eligible,
    keep_points,
    plan_prune,
    plan_trim,
    unsafe_levels,
)
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import TreeView

VOLUME = 200 * 10**6
TB = 10**12
BOTO_PART = 8 * 2**20  # s3transfer's default multipart chunk, as duplicity uploads
BAG_SIZE = 40 * 10**9
KEEP = 2  # the trim's default for every kind of level
MIN_AGE_DAYS = 180  # archive.min_age_days
RECORD_ENTRY = 250  # bytes of JSON per duplicity file in a manifest or a record
INDEX_BYTES = 64 * 1024  # assumed: one backup's encrypted file index (paths it changed)


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


_BACKUPS: dict[frozenset[str], list] = {}  # a level's names -> its complete backups


class _View(TreeView):
    """A TreeView that works out each answer once: the model asks the same view about
    its newest backup and its levels' backups thousands of times a day (through
    core.retention.eligible, once per level), a real run only a few times."""

    def _memo(self, key, compute):
        memo = self.__dict__.get("_answers")
        if memo is None:
            memo = {}
            object.__setattr__(self, "_answers", memo)  # a frozen dataclass
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def backups(self, level):
        # a level's backups depend only on its names: the same names, the same answer
        names = self.files.get(level, frozenset())
        found = _BACKUPS.get(names)
        if found is None:
            found = _BACKUPS[names] = super().backups(level)
        return found

    def chained(self):
        return self._memo("chained", super().chained)

    def newest(self):
        return self._memo("newest", super().newest)

    def newest_leaf(self):
        return self._memo("newest_leaf", super().newest_leaf)

    def levels(self):
        return self._memo("levels", super().levels)


class _Archived(Mapping):
    """Every name the archive holds or pruned, with its size: what plan_bags must not
    send again (as cya's ``catalog.archived_sizes() | catalog.pruned_sizes()``)."""

    def __init__(self, run: CadenceRun):
        self.run = run

    def __contains__(self, name: object) -> bool:
        return name in self.run.bag_of or name in self.run.pruned

    def __getitem__(self, name: str) -> int:
        if name not in self:
            raise KeyError(name)
        return self.run.sizes[name]

    def __iter__(self):
        yield from self.run.bag_of
        yield from self.run.pruned

    def __len__(self) -> int:
        return len(self.run.bag_of) + len(self.run.pruned)


@dataclass
class Bag:
    """A bag in Deep Archive. A bag of one file larger than ``BAG_SIZE`` stands for the
    ``pieces`` bags its 200 MB volumes would fill."""

    key: str
    day: int
    bytes: int
    pieces: int
    names: frozenset[str]
    unneeded: int | None = None  # the first day no kept point needed it
    due: int | None = None  # the day its queued deletion is due
    deleted: int | None = None


@dataclass
class Record:
    """A small object in Standard: a manifest, a backup's record and index, a year record."""

    day: int
    bytes: int
    deleted: int | None = None


class CadenceRun:
    """Daily backups of one tree with ``archive.cadence`` set, day by day through cya's
    own pure code, as ``cya backup`` runs them: place the backup; archive what the cadence
    says is due (plan_bags on core.retention.eligible levels, a name never sent twice);
    record every backup the bucket can now restore alone, and finished years; the remote
    retention (keep_points, plan_prune: a bag goes when no kept point needs it and it is
    180 days old, through the deferred-deletion queue); then trim the tree, keeping
    levels whose due files the bucket does not hold."""

    def __init__(self, model: SizeModel, cadence: str, start: date):
        self.model = model
        self.cadence = cadence
        self.start = start
        self.files: dict[Level, set[str]] = {}
        self.frozen: dict[Level, frozenset[str]] = {}  # the same, as a view takes them
        self.sizes: dict[str, int] = {}
        self.newest = None
        self.bags: list[Bag] = []
        self.live: dict[str, Bag] = {}  # bags not deleted, by key
        self.bag_of: dict[str, Bag] = {}  # archived name -> its bag (the catalog's blobs)
        self.pruned: set[str] = set()  # names whose bag the retention deleted
        self.points: dict[str, tuple[Level, frozenset[str], Record]] = {}  # kept backups
        self.known: set[str] = set()  # every backup ever recorded, kept or pruned
        self.years: dict[str, tuple[frozenset[str], Record]] = {}  # kept year records
        self.recorded_years: set[str] = set()
        self.records: list[Record] = []
        self.made_on: dict[str, int] = {}  # backup time -> its day
        self.offsite_on: dict[str, int] = {}  # backup time -> the day its record was made
        self.exposure = 0  # worst days from the newest backup back to the newest off-site
        self.multipart = 0  # Deep Archive requests: create, parts, complete
        self.standard_puts = 0  # manifests, records, indexes, system/, and LISTs
        self.reads = 0  # HEADs and GETs
        self.broken: set[str] = set()  # kept points missing a bag (must stay empty)
        self.needs: dict[str, frozenset[str]] = {}  # kept point -> keys of its bags
        self.stamps: dict = {}  # datetime -> duplicity time stamp

    def view(self) -> TreeView:
        return _View(dict(self.frozen))

    def run(self, days: int) -> None:
        for number in range(days):
            self.day(number)

    def day(self, number: int) -> None:
        time = noon(self.start + timedelta(days=number))
        leaf = leaf_for(time.date())
        view = self.view()
        placement = plan_placement(time, leaf, view.chained(), self.newest)
        base = set(self.files.get(placement.base, ())) if placement.base else set()
        previous = max(complete_backup_times(base), default=None)
        made = self.model.set_files(time, previous, split=False)
        self.sizes.update(made)
        for level in placement.new_levels:
            self.files[level] = set(base)
        for level in placement.link_into:
            self.files[level] |= set(made)
            self.frozen[level] = frozenset(self.files[level])
        self.newest = time
        self.made_on[format_time(time)] = number
        view = self.view()
        due = eligible(view, self.cadence)  # the archive step and the trim ask the same
        changed = self.archive(view, due, number)
        changed |= self.prune(view, number)
        if changed:  # system/: the catalog, the config, setup.json
            self.standard_puts += 3
        self.trim(view, due, leaf)
        newest_offsite = max(self.points, default=None)
        self.exposure = max(self.exposure, number + 1 if newest_offsite is None
                            else number - self.made_on[newest_offsite])

    def archive(self, view: TreeView, due_levels: list[Level], number: int) -> bool:
        """Bags, backup records and year records of one run; whether anything was sent."""
        live = sum(b.pieces for b in self.live.values())
        self.standard_puts += 1 + (live * 2 + len(self.points) * 2 + len(self.years)) // 1000
        archived = _Archived(self)
        due = [YearFile(f"{level.relpath}/files/{name}", self.sizes[name])
               for level in due_levels
               for name in sorted(self.files.get(level, ())) if name not in archived]
        plan = plan_bags(f"{self.newest.year}", due, archived, BAG_SIZE)
        for spec in plan.bags:
            pieces = max(1, math.ceil(spec.estimated_bytes / BAG_SIZE))
            piece = spec.estimated_bytes // pieces
            bag = Bag(spec.digest, number, spec.estimated_bytes, pieces,
                      frozenset(b.name for b in spec.blobs))
            self.bags.append(bag)
            self.live[bag.key] = bag
            self.bag_of.update({name: bag for name in bag.names})
            self.multipart += pieces * costs.upload_requests(math.ceil(piece / part_size(piece)))
            self.reads += 2 * pieces  # the adoption check's GET, the HEAD after Complete
            self.standard_puts += pieces  # the manifests
            self.records.append(Record(number, pieces * (300 + RECORD_ENTRY * len(spec.blobs))))
        safe = set(self.bag_of)
        recorded = 0
        # a backup becomes restorable from the bucket alone only by what was just sent;
        # only levels holding a backup not recorded yet can give one (every level that
        # holds such a backup is looked at, so each gets its cheapest level, as in cya)
        part = archived_part(view, safe)
        fresh = _View({level: found for level, found in part.files.items()
                       if any(self.stamp(s.time) not in self.known
                              for s in part.backups(level))}) if plan.bags else _View({})
        for backup in restorable(fresh):
            time = self.stamp(backup.time)
            if time in self.known:
                continue
            names = frozenset(name for backup_set in backup.chain for name in backup_set.files)
            record = Record(number, 300 + RECORD_ENTRY * len(names) + INDEX_BYTES)
            self.records.append(record)
            self.points[time] = (backup.level, names, record)
            self.needs[f"backup {time}"] = self.bags_of(names)
            self.known.add(time)
            self.offsite_on[time] = number
            self.standard_puts += 2  # backups/TIME.json, indexes/TIME.gpg
            recorded += 1
        for year in awaiting_archive(view, self.recorded_years):
            names = {name for level, found in self.files.items()
                     if level == year or year.is_ancestor_of(level) for name in found}
            paths = sum(len(found) for level, found in self.files.items()
                        if level == year or year.is_ancestor_of(level))
            names &= safe
            if not names:
                continue
            record = Record(number, RECORD_ENTRY * paths)
            self.records.append(record)
            self.years[year.relpath] = (frozenset(names), record)
            self.needs[f"year {year.relpath}"] = self.bags_of(names)
            self.recorded_years.add(year.relpath)
            self.standard_puts += 1
            recorded += 1
        return bool(plan.bags or recorded)

    def prune(self, view: TreeView, number: int) -> bool:
        """The remote retention of one run (archive.prune = true): whether it dropped or
        deleted anything."""
        # every backup of the tree: the model's chains are never broken, so this is
        # what core.chains.restorable(view) gives, at a fraction of the work
        held = {self.stamp(s.time) for level in view.levels() for s in view.backups(level)}
        decisions = keep_points({t: p[0] for t, p in self.points.items()}, held,
                                view.levels(), view.chained(), [view.newest_leaf()],
                                lambda kind: KEEP, list(self.years), 0)
        planned = [Point(name, decisions[name][0], self.needs[name])
                   for name in [f"backup {t}" for t in self.points]
                   + [f"year {y}" for y in self.years]]
        plan = plan_prune(planned, [RemoteObject(b.key, b.bytes, number - b.day)
                                    for b in self.live.values()], MIN_AGE_DAYS)
        for point in plan.drop:
            kind, name = point.name.split(" ", 1)
            record = self.points.pop(name)[2] if kind == "backup" else self.years.pop(name)[1]
            record.deleted = number
            del self.needs[point.name]
        for item, wait in [(o, 0.0) for o in plan.delete] + list(plan.defer):
            bag = self.live[item.key]
            bag.unneeded = number if bag.unneeded is None else bag.unneeded
            bag.due = number + math.ceil(wait) if bag.due is None else bag.due
        gone = {b.key for b in self.live.values() if b.due is not None and b.due <= number}
        for key in gone:
            bag = self.live.pop(key)
            bag.deleted = number
            for name in bag.names:
                del self.bag_of[name]
            self.pruned |= bag.names
        if gone:  # a kept point must never lose a bag it needs
            self.broken |= {name for name, keys in self.needs.items() if keys & gone}
        return bool(plan.drop or gone)

    def bags_of(self, names: frozenset[str]) -> frozenset[str]:
        """The keys of the bags holding ``names`` (a name's bag changes only when the bag
        is deleted, which no kept point may see)."""
        return frozenset(self.bag_of[name].key for name in names)

    def stamp(self, moment) -> str:
        found = self.stamps.get(moment)
        if found is None:
            found = self.stamps[moment] = format_time(moment)
        return found

    def trim(self, view: TreeView, due_levels: list[Level], leaf: Level) -> None:
        unarchived = unsafe_levels(view, due_levels, set(self.bag_of))
        plan = plan_trim(view.levels(), view.chained(), lambda kind: KEEP, [leaf], unarchived)
        if plan.empty:
            return
        doomed = [decision.level for decision in plan.delete]  # each takes its subtree
        gone = [level for level in self.files
                if any(level == top or top.is_ancestor_of(level) for top in doomed)]
        leaving = {name for level in gone for name in self.files[level]}
        for level in gone:
            del self.files[level]
            del self.frozen[level]
        leaving -= {name for names in self.files.values() for name in names}
        # the trim HEADs the bags of the last copies it lets go of
        self.reads += len({self.bag_of[n].key for n in leaving if n in self.bag_of})

    def result(self, days: int, prices: costs.Prices) -> dict:
        """The bill and the lag over ``days``."""
        storage = tail = early = tb_months = 0.0
        for bag in self.bags:
            end = bag.deleted if bag.deleted is not None else days
            month = costs.storage_month(prices, bag.bytes, bag.pieces)
            storage += month * (end - bag.day) / costs.DAYS_PER_MONTH
            tb_months += bag.bytes / TB * (end - bag.day) / costs.DAYS_PER_MONTH
            if bag.unneeded is not None:
                tail += month * (end - bag.unneeded) / costs.DAYS_PER_MONTH
            if bag.deleted is not None:
                early += costs.early_deletion(prices, bag.bytes, bag.pieces,
                                              bag.deleted - bag.day)
        standard = sum(r.bytes / costs.GB * prices.standard_gb_month
                       * ((r.deleted if r.deleted is not None else days) - r.day)
                       / costs.DAYS_PER_MONTH for r in self.records)
        requests = (costs.request_cost(prices, self.multipart, self.standard_puts)
                    + self.reads / 1000 * prices.get_per_1000)
        held = {format_time(r.time) for r in restorable(self.view())}
        lags = [self.offsite_on[t] - self.made_on[t] for t in self.offsite_on]
        live = [b for b in self.bags if b.deleted is None]
        return {
            "total_usd": round(storage + standard + requests + early, 2),
            "storage_usd": round(storage + standard, 2),
            "of_which_180_day_tail_usd": round(tail, 2),
            "requests_usd": round(requests, 2),
            "early_deletion_usd": round(early, 2),
            "objects_uploaded": sum(b.pieces for b in self.bags),
            "objects_deleted": sum(b.pieces for b in self.bags if b.deleted is not None),
            "objects_at_end": sum(b.pieces for b in live),
            "standard_objects_written": len(self.records),
            "TB_months": round(tb_months, 1),
            "bytes_kept_at_end_TB": round(sum(b.bytes for b in live) / TB, 2),
            "backups_kept_offsite_at_end": len(self.points),
            "years_kept_offsite_at_end": len(self.years),
            "worst_lag_days": max(lags, default=None),
            "worst_exposure_days": self.exposure,
            "backups_never_offsite": len(set(self.made_on) - set(self.offsite_on) - held),
            "kept_points_missing_a_bag": len(self.broken),
        }


def archived_part(view: TreeView, names: set[str]) -> TreeView:
    """The tree as far as its files are among ``names`` (cya.actions.archive's)."""
    return _View({level: frozenset(n for n in found if n in names)
                  for level, found in view.files.items()})

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


def _bill(storage: float, requests: float, early: float, objects: int, kept: int) -> dict:
    return {"storage_usd": round(storage, 2), "requests_usd": round(requests, 2),
            "early_deletion_usd": round(early, 2),
            "total_usd": round(storage + requests + early, 2),
            "objects_uploaded": objects, "bytes_kept_at_end_TB": round(kept / TB, 2)}


def cadences(model: SizeModel, days: int, prices: costs.Prices) -> dict:
    """Every cadence's bill and lag over ``days`` (cya's defaults: keep 2, keep_years 0,
    min_age_days 180, 40 GB bags, archive.prune on)."""
    found = {}
    for cadence in CADENCES:
        run = CadenceRun(model, cadence, date(2016, 1, 1))
        run.run(days)
        found[cadence] = run.result(days, prices)
    return found


def run(work: Path, quick: bool, seed: int) -> dict:
    measured = measure(work / "cost", seed, quick)
    model = SizeModel(measured, TB)
    days = 3650
    prices = costs.Prices()
    by_cadence = cadences(model, days, prices)
    default = by_cadence["backup"]
    result = {
        "data": f"a 1 TB source for 10 years, daily backups; incremental sizes measured with "
                f"real duplicity on the benchmark source and scaled; prices as of {prices.as_of}",
        "measured": {"full_bytes": measured["full_bytes"],
                     "inc_ratio_by_span_days": {k: round(v, 4) for k, v in
                                                measured["inc_ratio_by_span_days"].items()}},
        "cadences": by_cadence,
        "backup_vs_year": round(default["total_usd"] / by_cadence["year"]["total_usd"], 3),
        "duplicity_deep_archive_keep_all": bill_duplicity(
            simulate_duplicity(model, days, None), days, prices),
        "duplicity_deep_archive_keep_2_fulls": bill_duplicity(
            simulate_duplicity(model, days, 2), days, prices),
    }
    result["cya_vs_duplicity_keep_all"] = round(
        default["total_usd"] / result["duplicity_deep_archive_keep_all"]["total_usd"], 3)
    result["cya_usd_per_TB_month_at_end"] = round(
        costs.storage_month(prices, int(default["bytes_kept_at_end_TB"] * TB),
                            default["objects_at_end"])
        / max(default["bytes_kept_at_end_TB"], 1e-9), 3)
    return result
