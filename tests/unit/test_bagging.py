"""Bag plans and cost estimates: properties over random years, and worked figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cya.core import costs
from cya.core.bagging import BLOCK, NameConflict, YearFile, part_size, plan_bags
from cya.core.names import format_time, parse_name

LEVELS = ["2000/2010/2012", "2000/2010/2012/2012-03", "2000/2010/2012/2012-03/2012-03-04",
          "2000/2010/2012/2012-04", "2000/2010/2012/2012-04/2012-04-01"]
START = datetime(2012, 1, 1, 12, tzinfo=UTC)


def name(day: int, volume: int) -> str:
    start = format_time(START)
    end = format_time(START + timedelta(days=day))
    if day == 0:
        return f"duplicity-full.{start}.vol{volume}.difftar.gpg"
    return f"duplicity-inc.{start}.to.{end}.vol{volume}.difftar.gpg"


@st.composite
def years(draw):
    """A year: duplicity files (day, volume) with sizes, each linked into 1-3 levels."""
    files = draw(st.dictionaries(st.tuples(st.integers(0, 60), st.integers(1, 3)),
                                 st.integers(0, 5000), min_size=1, max_size=40))
    result = []
    for (day, volume), size in files.items():
        for level in draw(st.sets(st.sampled_from(LEVELS), min_size=1, max_size=3)):
            result.append(YearFile(f"{level}/files/{name(day, volume)}", size))
    return result


@given(years(), st.integers(512, 20000), st.data())
def test_every_file_is_stored_once_or_reused(files, bag_size, data):
    names = sorted({f.name for f in files})
    archived_names = data.draw(st.sets(st.sampled_from(names)))
    sizes = {f.name: f.size for f in files}
    plan = plan_bags("2000/2010/2012", files, {n: sizes[n] for n in archived_names}, bag_size)

    stored = [b for bag in plan.bags for b in bag.blobs]
    assert sorted(b.name for b in stored) == sorted(set(names) - archived_names)  # once each
    stored_paths = sorted(p for b in stored for p in b.paths)
    reused_paths = sorted(f.path for f in plan.reused)
    assert sorted(stored_paths + reused_paths) == sorted(f.path for f in files)
    assert {f.name for f in plan.reused} <= archived_names
    for bag in plan.bags:
        assert bag.blobs, "no empty bag"
        # about bag_size: over it only when one file alone is larger
        assert bag.estimated_bytes - 2 * BLOCK <= bag_size or len(bag.blobs) == 1
    shared_bags = [bag for bag in plan.bags if bag.blobs[0].tar_bytes() <= bag_size]
    for first, second in zip(shared_bags, shared_bags[1:], strict=False):
        # a bag closes only when the next file would take it over
        assert (first.estimated_bytes - 2 * BLOCK) + second.blobs[0].tar_bytes() > bag_size
    # ordered by backup time: chains sit together
    def key(blob):
        return parse_name(blob.name).end, parse_name(blob.name).start, blob.name

    shared = [key(b) for bag in plan.bags for b in bag.blobs if b.tar_bytes() <= bag_size]
    assert shared == sorted(shared)
    assert plan.upload_bytes == sum(sizes[n] for n in set(names) - archived_names)
    # deterministic: the same files in any order give the same bags
    again = plan_bags("2000/2010/2012", list(reversed(files)),
                      {n: sizes[n] for n in archived_names}, bag_size)
    assert [b.digest for b in again.bags] == [b.digest for b in plan.bags]


def test_bags_follow_backup_time():
    files = [YearFile(f"{LEVELS[0]}/files/{name(day, 1)}", 100) for day in (30, 0, 7, 1)]
    plan = plan_bags(LEVELS[0], files, {}, 10**9)
    assert [b.name for b in plan.bags[0].blobs] == [name(d, 1) for d in (0, 1, 7, 30)]


def test_a_file_larger_than_the_bag_size_has_a_bag_of_its_own():
    files = [YearFile(f"{LEVELS[0]}/files/{name(0, 1)}", 1000),
             YearFile(f"{LEVELS[0]}/files/{name(0, 2)}", 50_000),
             YearFile(f"{LEVELS[0]}/files/{name(0, 3)}", 1000)]
    plan = plan_bags(LEVELS[0], files, {}, 10_000)
    assert [[b.size for b in bag.blobs] for bag in plan.bags] == [[50_000], [1000, 1000]]


def test_a_name_with_two_sizes_is_refused():
    path = f"{LEVELS[0]}/files/{name(0, 1)}"
    with pytest.raises(NameConflict):
        plan_bags(LEVELS[0], [YearFile(path, 10), YearFile(path.replace("2012/f", "2012/2012-03/f"),
                                                              11)], {}, 10**9)
    with pytest.raises(NameConflict):
        plan_bags(LEVELS[0], [YearFile(path, 10)], {name(0, 1): 12}, 10**9)


@given(st.integers(0, 5 * 10**12))
def test_part_size_keeps_under_ten_thousand_parts(total):
    size = part_size(total)
    assert size >= 32 * 2**20 and size % 2**20 == 0
    assert -(-total // size) <= 9_000


def test_costs_worked_figures():
    prices = costs.Prices()
    tb = 10**12
    # one terabyte in 25 bags of 40 GB: about a dollar a month
    month = costs.storage_month(prices, tb, 25)
    assert 0.99 < month < 1.0
    # overhead per object: 32 KB at Deep Archive + 8 KB at Standard rates
    assert costs.storage_month(prices, 0, 1000) == pytest.approx(
        1000 * 32 * 1024 / 1e9 * 0.00099 + 1000 * 8 * 1024 / 1e9 * 0.023)
    # early deletion: the rest of 180 days, nothing after them
    assert costs.early_deletion(prices, tb, 25, 90) == pytest.approx(month * 3)
    assert costs.early_deletion(prices, tb, 25, 200) == 0
    # bulk retrieval of one 40 GB bag, 2 GB fetched in 3 ranged GETs
    estimate = costs.retrieval(prices, "bulk", 1, 40 * 10**9, 2 * 10**9, 3)
    assert estimate.dollars == pytest.approx(40 * 0.0025 + 0.025 / 1000 + 2 * 0.09
                                             + 3 * 0.0004 / 1000)
    assert estimate.hours == 48
    assert costs.retrieval(prices, "standard", 1, 0, 0, 0).hours == 12
    assert costs.request_cost(prices, costs.upload_requests(1000)) == pytest.approx(0.0501)
