"""Which backups a level can restore, what the newest chain lacks, and which level restores a
date best (cya/core/chains.py): properties over levels built from real duplicity names."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cya.core.chains import bytes_to_read, chain_problem, chain_to, choose, restorable
from cya.core.names import (
    BackupSet,
    backup_sets,
    complete_backup_times,
    format_time,
    parse_name,
)
from cya.core.timescale import Level
from cya.core.treeview import TreeView
from tests.unit.trees import (
    SetSpec,
    backup_moments,
    chain_of,
    grow,
    linked_histories,
    names_of,
    names_of_set,
    size_of,
    times,
    view_of,
)


def assert_linked(chain: tuple[BackupSet, ...], time: datetime) -> None:
    """A chain duplicity can read: a full first, every set complete, each incremental
    starting at the time of the set before it, ending with the backup at ``time``."""
    assert chain, "empty chain"
    assert chain[0].full and not any(s.full for s in chain[1:])
    assert all(s.complete for s in chain)
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.start == before.time
    assert chain[-1].time == time


def removable(spec: SetSpec) -> list[str]:
    """The files of a set whose loss its names show: all but the last of several volumes
    (names alone cannot tell that a set had one more volume; the manifest says so)."""
    return [name for name in spec.names if spec.volumes == 1 or name != spec.last_volume]


# --- chain_to -------------------------------------------------------------------------------

@settings(max_examples=30)
@given(linked_histories())
def test_every_backup_of_a_linked_history_chains_to_the_full_before_it(specs):
    sets = backup_sets(names_of(specs))
    for index, spec in enumerate(specs):
        chain = chain_to(sets, spec.end)
        assert_linked(chain, spec.end)
        assert [s.time for s in chain] == [s.end for s in chain_of(specs, index)]
        assert chain[0].start == chain[0].time  # a full's one time


@settings(max_examples=30)
@given(linked_histories(min_sets=2), st.data())
def test_losing_one_file_breaks_exactly_the_chains_that_need_its_set(specs, data):
    sets = backup_sets(names_of(specs))
    damaged = data.draw(st.integers(0, len(specs) - 1), label="damaged set")
    lost = data.draw(st.sampled_from(removable(specs[damaged])), label="lost file")
    after = backup_sets([n for n in names_of(specs) if n != lost])
    for index, spec in enumerate(specs):
        if specs[damaged] in chain_of(specs, index):
            assert chain_to(after, spec.end) == ()
        else:
            assert chain_to(after, spec.end) == chain_to(sets, spec.end)


@settings(max_examples=30)
@given(linked_histories(min_sets=2), st.data())
def test_a_lost_set_is_a_gap_that_breaks_every_chain_through_it(specs, data):
    lost = data.draw(st.integers(0, len(specs) - 1), label="lost set")
    sets = backup_sets(n for i, spec in enumerate(specs) if i != lost for n in spec.names)
    for index, spec in enumerate(specs):
        if index == lost:
            assert chain_to(sets, spec.end) == ()  # not there at all
        elif specs[lost] in chain_of(specs, index):
            assert chain_to(sets, spec.end) == ()
        else:
            assert_linked(chain_to(sets, spec.end), spec.end)


@settings(max_examples=30)
@given(linked_histories(min_sets=2), st.data())
def test_an_incremental_must_start_exactly_at_a_complete_set(specs, data):
    incrementals = [i for i, spec in enumerate(specs) if not spec.full]
    assume(incrementals)
    index = data.draw(st.sampled_from(incrementals), label="relinked")
    spec = specs[index]
    shift = data.draw(st.sampled_from([-1, 1]), label="shift")
    start = spec.start + timedelta(seconds=shift)
    assume(start < spec.end and start not in {s.end for s in specs})
    relinked = SetSpec(start, spec.end, False, spec.volumes, spec.suffix)
    names = [n for i, s in enumerate(specs) for n in (relinked if i == index else s).names]
    sets = backup_sets(names)
    # the set it now claims to follow is not there (though one lies a second away): it and
    # everything after it in its chain are unrestorable
    assert chain_to(sets, spec.end) == ()
    for later in range(index + 1, len(specs)):
        if specs[index] in chain_of(specs, later):
            assert chain_to(sets, specs[later].end) == ()


@settings(max_examples=30)
@given(linked_histories(), times)
def test_a_time_with_no_complete_set_has_no_chain(specs, time):
    names = names_of(specs)
    assume(time not in {s.end for s in specs})
    assert chain_to(backup_sets(names), time) == ()
    # a set whose manifest is still being written (.part) is not there either
    last = specs[-1]
    partial = [n for n in names if n != last.manifest] + [last.manifest + ".part"]
    assert chain_to(backup_sets(partial), last.end) == ()


def test_chain_to_by_hand():
    t0 = datetime(2012, 12, 2, 12, tzinfo=UTC)
    t1, t2, t3 = (t0 + timedelta(days=d) for d in (1, 2, 3))
    names = (names_of_set(t0, t0, True, 2) + names_of_set(t0, t1, False)
             + names_of_set(t1, t2, False) + names_of_set(t2, t3, False))
    sets = backup_sets(names)
    assert [s.time for s in chain_to(sets, t3)] == [t0, t1, t2, t3]
    assert [s.time for s in chain_to(sets, t0)] == [t0]
    # without the full, nothing restores
    no_full = [n for n in names if not n.startswith("duplicity-full")]
    assert [chain_to(backup_sets(no_full), t) for t in (t0, t1, t2, t3)] == [()] * 4
    # a lone manifest is not a set duplicity can read
    lone = names_of_set(t0, t0, True) + [names_of_set(t0, t1, False)[-1]]
    assert chain_to(backup_sets(lone), t1) == ()


@contextmanager
def time_limit(seconds: float):
    """Fail (raise TimeoutError) instead of hanging when the code under test loops."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_incremental_that_starts_at_its_own_time_is_not_restorable_and_does_not_hang():
    t0 = datetime(2012, 12, 4, 12, tzinfo=UTC)
    alone = backup_sets(names_of_set(t0, t0, False))
    beside_a_full = backup_sets(names_of_set(t0, t0, True) + names_of_set(t0, t0, False))
    with time_limit(0.5):
        assert chain_to(alone, t0) == ()
        view = TreeView({Level(("2000", "2010")): frozenset(
            names_of_set(t0, t0, True) + names_of_set(t0, t0, False))})
        assert [r.chain_length for r in restorable(view)] in ([], [1])
        assert [s.full for s in chain_to(beside_a_full, t0)] in ([], [True])


# --- chain_problem --------------------------------------------------------------------------

def newest_full(specs: list[SetSpec]) -> int:
    return max(i for i, spec in enumerate(specs) if spec.full)


@settings(max_examples=30)
@given(linked_histories())
def test_a_linked_history_may_be_extended(specs):
    assert chain_problem(backup_sets(names_of(specs))) is None
    assert chain_problem([]) is None


@settings(max_examples=30)
@given(linked_histories(), st.data())
def test_a_damaged_set_in_the_newest_chain_is_named(specs, data):
    damaged = data.draw(st.integers(0, len(specs) - 1), label="damaged set")
    lost = data.draw(st.sampled_from(removable(specs[damaged])), label="lost file")
    problem = chain_problem(backup_sets(n for n in names_of(specs) if n != lost))
    if damaged < newest_full(specs):
        assert problem is None  # an older chain's damage does not stop the newest one
    else:
        missing = "its manifest" if lost == specs[damaged].manifest else "some of its files"
        assert problem == f"the backup of {format_time(specs[damaged].end)} lacks {missing}"


@settings(max_examples=30)
@given(linked_histories(min_sets=2), st.data())
def test_a_gap_in_the_newest_chain_is_named(specs, data):
    lost = data.draw(st.integers(0, len(specs) - 1), label="lost set")
    rest = [spec for i, spec in enumerate(specs) if i != lost]
    problem = chain_problem(backup_sets(names_of(rest)))
    if lost < newest_full(specs) or lost == len(specs) - 1:
        assert problem is None  # an older chain, or the newest chain merely shorter
    elif specs[lost + 1].full:
        assert problem is None
    elif not any(spec.full for spec in rest):
        assert problem == f"no full backup before {format_time(rest[0].end)}"
    else:
        after = specs[lost + 1]
        assert problem == (f"the backup of {format_time(after.end)} follows "
                           f"{format_time(specs[lost].end)}, which is missing")


def test_chain_problem_by_hand():
    t0 = datetime(2012, 12, 2, 12, tzinfo=UTC)
    t1, t2, t3 = (t0 + timedelta(days=d) for d in (1, 2, 3))
    full = names_of_set(t0, t0, True)
    first, second = names_of_set(t0, t1, False, 2), names_of_set(t1, t2, False)
    assert chain_problem(backup_sets(first + second)) == \
        "no full backup before 20121203T120000Z"
    assert chain_problem(backup_sets(full + first[1:] + second)) == \
        "the backup of 20121203T120000Z lacks some of its files"  # volume 1 lost
    assert chain_problem(backup_sets(full + first[:-1] + second)) == \
        "the backup of 20121203T120000Z lacks its manifest"
    assert chain_problem(backup_sets(full + second)) == \
        "the backup of 20121204T120000Z follows 20121203T120000Z, which is missing"
    # a new full starts a new chain: the broken old one no longer matters
    assert chain_problem(backup_sets(full + second + names_of_set(t3, t3, True))) is None


# --- restorable, choose, bytes_to_read over grown trees --------------------------------------

@settings(max_examples=20)
@given(backup_moments)
def test_a_grown_tree_restores_every_backup_once_from_the_finest_level(moments):
    tree = grow(moments)
    view = view_of(tree)
    found = restorable(view)
    assert [r.time for r in found] == sorted(moments)
    for item in found:
        assert_linked(item.chain, item.time)
        assert item.full == item.chain[-1].full
        assert item.chain == chain_to(view.backups(item.level), item.time)
        holders = [level for level in tree if item.chain[-1].manifest in tree[level]]
        # every copy carries the same chain, so the tie goes to the finest level
        assert len(item.level.names) == max(len(level.names) for level in holders)
        assert item.volumes == sum(1 for s in item.chain for n in s.files if ".vol" in n)


@settings(max_examples=20)
@given(backup_moments, st.data())
def test_losing_a_file_everywhere_makes_exactly_the_backups_that_need_it_unrestorable(
        moments, data):
    volumes = {moment: data.draw(st.integers(1, 3)) for moment in moments}
    tree = grow(moments, volumes)
    before = {r.time: r.chain for r in restorable(view_of(tree))}
    everything = sorted(set().union(*tree.values()))
    lost = data.draw(st.sampled_from(everything), label="lost file")
    (needed,) = [s for s in backup_sets(everything) if lost in s.files]
    volume_numbers = [parse_name(n).volume for n in needed.files if parse_name(n).volume]
    assume(len(volume_numbers) == 1 or parse_name(lost).volume != max(volume_numbers))
    damaged = {level: names - {lost} for level, names in tree.items()}
    after = {r.time: r.chain for r in restorable(view_of(damaged))}
    assert set(after) == {time for time, chain in before.items() if needed not in chain}
    for time in after:
        assert after[time] == before[time]


@settings(max_examples=20)
@given(backup_moments, st.data())
def test_a_backup_stays_restorable_while_any_level_holds_its_whole_chain(moments, data):
    tree = grow(moments)
    chains = {r.time: r.chain for r in restorable(view_of(tree))}
    level = data.draw(st.sampled_from(sorted(tree)), label="damaged level")
    lost = data.draw(st.sampled_from(sorted(tree[level])), label="lost file")
    damaged = dict(tree)
    damaged[level] = tree[level] - {lost}
    after = {r.time for r in restorable(view_of(damaged))}
    for time, chain in chains.items():
        needed = {n for s in chain for n in s.files}
        assert (time in after) == any(needed <= names for names in damaged.values())


@st.composite
def independent_levels(draw):
    """Levels whose histories share backup times but not necessarily chains: the same time
    can be a full in one level and the end of a long chain in another."""
    pool = sorted(draw(st.lists(times, min_size=1, max_size=6, unique=True)))
    candidates = [Level(("2000",)), Level(("2000", "2010")), Level(("2000", "2010", "2012")),
                  Level(("2000", "2010", "2012", "2012-12")),
                  Level(("2000", "2010", "2012", "2012-12", "2012-12-02"))]
    levels = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=5, unique=True))
    tree = {}
    for level in levels:
        chosen = sorted(draw(st.sets(st.sampled_from(pool), min_size=1)))
        specs: list[SetSpec] = []
        for time in chosen:
            full = not specs or draw(st.booleans())
            specs.append(SetSpec(time if full else specs[-1].end, time, full))
        tree[level] = names_of(specs)
    return tree


@settings(max_examples=20)
@given(independent_levels())
def test_each_backup_comes_from_its_shortest_chain_and_the_finest_level_on_a_tie(tree):
    view = view_of(tree)
    found = restorable(view)
    times_found = [r.time for r in found]
    assert times_found == sorted(set(times_found))
    reachable = {t for level in tree for t in complete_backup_times(tree[level])
                 if chain_to(view.backups(level), t)}
    assert set(times_found) == reachable
    for item in found:
        assert_linked(item.chain, item.time)
        for level in tree:
            other = chain_to(view.backups(level), item.time)
            if other:
                assert (len(other), -len(level.names)) >= (item.chain_length,
                                                            -len(item.level.names))


def test_shortest_chain_beats_a_finer_level_and_a_tie_goes_to_the_finer():
    t0 = datetime(2012, 12, 2, 12, tzinfo=UTC)
    t1, t2 = t0 + timedelta(days=1), t0 + timedelta(days=2)
    decade, week = Level(("2000", "2010")), Level(("2000", "2010", "2012", "2012-12",
                                                    "2012-12-02"))
    view = view_of({
        decade: names_of_set(t0, t0, True) + names_of_set(t2, t2, True),
        week: names_of_set(t0, t0, True) + names_of_set(t0, t1, False)
        + names_of_set(t1, t2, False)})
    by_time = {r.time: r for r in restorable(view)}
    assert (by_time[t0].level, by_time[t0].chain_length) == (week, 1)  # a tie
    assert (by_time[t1].level, by_time[t1].chain_length) == (week, 2)
    assert (by_time[t2].level, by_time[t2].chain_length, by_time[t2].full) == (decade, 1, True)


@settings(max_examples=20)
@given(backup_moments, st.datetimes(min_value=datetime(1997, 1, 1),
                                    max_value=datetime(2033, 1, 1)))
def test_choose_gives_the_newest_backup_at_or_before_the_date(moments, when):
    when = when.replace(tzinfo=UTC)
    view = view_of(grow(moments))
    choice = choose(view, when)
    earlier = [m for m in moments if m <= when]
    if not earlier:
        assert choice is None
        return
    assert choice is not None and choice.time <= when
    assert choice.time == max(earlier)
    assert choice == next(r for r in restorable(view) if r.time == choice.time)
    assert choose(view, choice.time) == choice  # the exact moment counts


@settings(max_examples=20)
@given(backup_moments)
def test_bytes_to_read_is_the_size_of_every_file_of_the_chain(moments):
    view = view_of(grow(moments))
    for item in restorable(view):
        assert bytes_to_read(view, item) == sum(size_of(n) for s in item.chain for n in s.files)
    # without sizes (a view from names alone) there is nothing to count
    bare = view_of(grow(moments), with_info=False)
    assert all(bytes_to_read(bare, item) == 0 for item in restorable(bare))


def test_an_empty_tree_restores_nothing():
    view = TreeView({})
    assert restorable(view) == []
    assert choose(view, datetime(2020, 1, 1, tzinfo=UTC)) is None
