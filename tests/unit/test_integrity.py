"""core.integrity: which files a ``cya check`` run reads, and what names alone say."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cya.core.integrity import (
    CIRCLE,
    missing,
    needing,
    parse_subset,
    placed_levels,
    selected,
    set_problems,
)
from cya.core.names import backup_sets
from cya.core.timescale import Level
from cya.core.treeview import FileInfo, TreeView

names = st.lists(st.text(min_size=1, max_size=40), unique=True, max_size=60)


@given(names, st.integers(1, 24))
def test_the_slices_of_m_read_every_name_exactly_once(some, m):
    count = {name: 0 for name in some}
    for n in range(1, m + 1):
        start, length = parse_subset(f"{n}/{m}").arc(0)
        for name in some:
            count[name] += selected(name, start, length)
    assert set(count.values()) <= {1}


@given(names, st.sampled_from(["100%", "50%", "25%", "20%", "12.5%", "10%", "5%", "1%"]),
       st.integers(0, CIRCLE - 1))
def test_a_share_that_divides_100_reads_every_name_once_per_round(some, share, position):
    subset = parse_subset(share)
    count = {name: 0 for name in some}
    for _ in range(round(100 / float(share.rstrip("%")))):
        start, length = subset.arc(position)
        for name in some:
            count[name] += selected(name, start, length)
        position = subset.next_position(position)
    assert set(count.values()) <= {1}


@given(names, st.floats(0.5, 100), st.integers(0, CIRCLE - 1))
def test_any_share_reads_everything_in_ceil_100_over_p_runs(some, percent, position):
    subset = parse_subset(f"{percent:.2f}%")
    runs = math.ceil(100 / float(f"{percent:.2f}"))
    seen = set()
    for _ in range(runs):
        start, length = subset.arc(position)
        seen |= {name for name in some if selected(name, start, length)}
        position = subset.next_position(position)
    assert seen == set(some)


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "0%", "101%", "-5%", "x/y", "", "1/0"])
def test_bad_subsets_are_refused(text):
    with pytest.raises(ValueError):
        parse_subset(text)


def full(t: str, *parts: str) -> list[str]:
    stamp = f"2012120{t}T120000Z"
    return [f"duplicity-full.{stamp}.{p}" if p != "sig" else
            f"duplicity-full-signatures.{stamp}.sigtar.gpg" for p in parts]


def inc(a: str, b: str, *parts: str) -> list[str]:
    span = f"2012120{a}T120000Z.to.2012120{b}T120000Z"
    return [f"duplicity-inc.{span}.{p}" if p != "sig" else
            f"duplicity-new-signatures.{span}.sigtar.gpg" for p in parts]


EVERY = ("vol1.difftar.gpg", "manifest.gpg", "sig")


def test_names_show_incomplete_sets_gaps_and_a_broken_newest_chain():
    sound = full("4", *EVERY) + inc("4", "5", *EVERY) + inc("5", "6", *EVERY)
    assert set_problems(backup_sets(sound)) == []
    gap = full("4", *EVERY) + inc("5", "6", *EVERY)
    assert set_problems(backup_sets(gap)) == [
        "the backup of 20121206T120000Z follows 20121205T120000Z, which is missing or "
        "incomplete there",
        "its newest chain is broken: the next backup there starts a new full"]
    holes = (full("4", "vol1.difftar.gpg", "vol3.difftar.gpg", "manifest.gpg")
             + inc("4", "5", *EVERY))
    problems = set_problems(backup_sets(holes))
    assert problems[0] == ("the backup of 20121204T120000Z lacks its signatures and "
                           "volume 2")
    old = full("3", "manifest.gpg", "sig") + full("4", *EVERY)
    assert set_problems(backup_sets(old))[-1] == \
        "its newest chain is sound: only older backups are affected"


def test_a_recorded_name_is_missing_where_its_set_or_its_placement_is():
    month, week = Level(("2000", "2010", "2012", "2012-12")), \
        Level(("2000", "2010", "2012", "2012-12", "2012-12-02"))
    chain = full("4", *EVERY) + inc("4", "5", *EVERY)
    lost = inc("4", "5", "vol1.difftar.gpg")[0]
    view = TreeView({month: frozenset(full("4", *EVERY)),
                     week: frozenset(n for n in chain if n != lost)})
    when = datetime(2012, 12, 5, 12, tzinfo=UTC)
    # the week holds the rest of its set
    assert missing(view, set(chain), {}) == {lost: (week,)}
    # the catalog placed the backup in the month too (its base)
    placed = {when: placed_levels(week, month, [])}
    assert missing(view, set(chain), placed)[lost] == (month, week)
    # a whole set gone from a level it was placed in
    manifest = inc("4", "5", "manifest.gpg")[0]
    assert manifest in missing(view, set(chain), placed)
    assert manifest not in missing(view, set(chain), {})


def test_needing_follows_the_chain_built_on_a_file():
    level = Level(("2000",))
    chain = full("4", *EVERY) + inc("4", "5", *EVERY) + inc("5", "6", *EVERY)
    view = TreeView({level: frozenset(chain)},
                    {level: {n: FileInfo(1, i, 1) for i, n in enumerate(chain)}})
    days = [datetime(2012, 12, d, 12, tzinfo=UTC) for d in (4, 5, 6)]
    assert needing(view, chain[0]) == days
    assert needing(view, inc("4", "5", "sig")[0]) == days[1:]
    assert needing(view, "not a duplicity name") == []
