from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cya.core.timescale import KINDS, Level, WeekStart, leaf_for, parse_level, week_start_of

days = st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31))
week_starts = st.sampled_from(list(WeekStart))


def test_worked_examples():
    assert leaf_for(date(2013, 1, 1)).relpath == "2000/2010/2012/2012-12/2012-12-30"
    assert leaf_for(date(2012, 12, 4)).relpath == "2000/2010/2012/2012-12/2012-12-02"
    monday = leaf_for(date(2013, 1, 1), WeekStart.MONDAY)
    assert monday.relpath == "2000/2010/2012/2012-12/2012-12-31"
    assert leaf_for(date(2000, 1, 1)).relpath == "1900/1990/1999/1999-12/1999-12-26"
    assert leaf_for(date(2020, 3, 1)).relpath == "2000/2020/2020/2020-03/2020-03-01"


@given(days, week_starts)
def test_every_day_of_a_week_maps_to_one_leaf(day, week_start):
    start = week_start_of(day, week_start)
    assert start.weekday() == week_start.weekday
    assert 0 <= (day - start).days < 7
    leaves = {leaf_for(start + timedelta(days=i), week_start) for i in range(7)}
    assert leaves == {leaf_for(day, week_start)}


@given(days, days, week_starts)
def test_leaves_sort_in_time_order(a, b, week_start):
    la, lb = leaf_for(a, week_start), leaf_for(b, week_start)
    if a <= b:
        assert la.relpath <= lb.relpath
        assert la <= lb
    if week_start_of(a, week_start) == week_start_of(b, week_start):
        assert la == lb


@given(days, week_starts)
def test_the_week_start_decides_every_level(day, week_start):
    leaf = leaf_for(day, week_start)
    start = date.fromisoformat(leaf.name)
    assert leaf.names[:4] == (f"{start.year // 100 * 100:04d}", f"{start.year // 10 * 10:04d}",
                              f"{start.year:04d}", f"{start.year:04d}-{start.month:02d}")
    assert [lv.kind for lv in leaf.lineage()] == list(KINDS)
    assert parse_level(leaf.names, week_start) == leaf
    for level in leaf.lineage():
        assert parse_level(level.names) == level
        if level != leaf:
            assert level.is_ancestor_of(leaf)


def test_parse_level_refuses_what_does_not_nest():
    assert parse_level(("2000", "2010", "2012", "2012-12", "2012-12-30"), WeekStart.SUNDAY)
    assert parse_level(("2000", "2010", "2012", "2012-12", "2012-12-31"), WeekStart.SUNDAY) is None
    assert parse_level(("2000", "2020", "2012")) is None
    assert parse_level(("1900", "2010")) is None
    assert parse_level(("2000", "2010", "2012", "2013-01")) is None
    assert parse_level(("2000", "2010", "2012", "2012-13")) is None
    assert parse_level(("files",)) is None
    assert parse_level((".cya",)) is None
    assert Level(("2000",)).parent is None
