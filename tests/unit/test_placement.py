from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cya.core.placement import BackupTimeNotAfterNewest, plan_placement
from cya.core.timescale import Level, leaf_for

T = datetime(2013, 1, 6, 12, tzinfo=UTC)


def lv(path: str) -> Level:
    return Level(tuple(path.split("/")))


def test_empty_tree_is_a_full_into_every_level():
    leaf = leaf_for(date(2012, 12, 4))
    plan = plan_placement(T, leaf, [], None)
    assert plan.full and plan.base is None
    assert plan.new_levels == leaf.lineage()
    assert plan.link_into == leaf.lineage()


def test_new_year_joins_the_decade_chain():
    chained = [lv("2000"), lv("2000/2010"), lv("2000/2010/2012"), lv("2000/2010/2012/2012-12"),
               lv("2000/2010/2012/2012-12/2012-12-30")]
    plan = plan_placement(T, leaf_for(date(2013, 1, 6)), chained, T - timedelta(days=5))
    assert plan.base == lv("2000/2010")
    assert [str(x) for x in plan.new_levels] == [
        "2000/2010/2013", "2000/2010/2013/2013-01", "2000/2010/2013/2013-01/2013-01-06"]
    assert plan.top_new_level == lv("2000/2010/2013")
    assert "new year, month, week" in plan.reason()


def test_plain_day_is_an_incremental_in_the_leaf():
    leaf = leaf_for(date(2013, 1, 7))
    plan = plan_placement(T + timedelta(days=1), leaf, leaf.lineage(), T)
    assert plan.base == leaf and plan.new_levels == () and plan.link_into == (leaf,)
    assert not plan.full


def test_a_time_not_after_the_newest_is_refused():
    leaf = leaf_for(date(2013, 1, 6))
    with pytest.raises(BackupTimeNotAfterNewest):
        plan_placement(T, leaf, leaf.lineage(), T)
    with pytest.raises(BackupTimeNotAfterNewest):
        plan_placement(T - timedelta(seconds=1), leaf, leaf.lineage(), T)


dates = st.dates(min_value=date(1950, 1, 1), max_value=date(2150, 1, 1))


@given(dates, st.lists(dates, max_size=6))
def test_base_is_the_deepest_chained_level_on_the_lineage(day, history):
    chained = {level for past in history for level in leaf_for(past).lineage()}
    leaf = leaf_for(day)
    plan = plan_placement(datetime(2200, 1, 1, tzinfo=UTC), leaf, chained, None)
    lineage = leaf.lineage()
    assert plan.link_into[-1] == leaf
    # the new levels are exactly the lineage below the base, and none was chained
    assert plan.link_into == lineage[len(lineage) - len(plan.link_into):]
    assert not set(plan.new_levels) & chained
    if plan.base is not None:
        assert plan.base in chained
        assert all(level in chained for level in lineage[: lineage.index(plan.base) + 1])
    else:
        assert plan.new_levels == lineage
