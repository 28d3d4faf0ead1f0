"""Trim plans: properties over random trees, and saved plans for hand-made ones."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cya.core.retention import TrimPlan, plan_trim
from cya.core.timescale import Level, leaf_for


def lv(path: str) -> Level:
    return Level(tuple(path.split("/")))


def tree_of(days):
    """Every level a tree holding backups on these days has."""
    return {level for day in days for level in leaf_for(day).lineage()}


def keep_fn(keep=2, **by_kind):
    return lambda kind: by_kind.get(kind, keep)


def without(levels, plan: TrimPlan) -> set[Level]:
    """The levels left after applying ``plan`` (a deleted level takes its subtree along)."""
    doomed = [d.level for d in plan.delete]
    return {level for level in levels
            if not any(level == gone or gone.is_ancestor_of(level) for gone in doomed)}


def plan_summary(plan):
    return sorted(str(d.level) for d in plan.delete)


days = st.lists(st.dates(min_value=date(1995, 1, 1), max_value=date(2035, 12, 31)),
                min_size=1, max_size=40)


@given(days, st.integers(1, 3), st.integers(1, 3), st.data())
def test_trim_properties(backup_days, keep, keep_week, data):
    levels = tree_of(backup_days)
    newest_leaf = leaf_for(max(backup_days))
    # some levels (never the newest leaf's lineage) hold no complete backup
    broken = data.draw(st.sets(st.sampled_from(sorted(levels))))
    broken -= set(newest_leaf.lineage())
    complete = levels - broken
    lineage = set(newest_leaf.lineage())
    # sometimes some levels hold files the bucket does not hold yet
    unarchived = data.draw(st.sets(st.sampled_from(sorted(levels)), max_size=4))
    protected = lineage | {level for held in unarchived for level in held.lineage()}
    keep_for = keep_fn(keep, week=keep_week)
    plan = plan_trim(levels, complete, keep_for, [newest_leaf], unarchived)
    after = without(levels, plan)
    deleted = {d.level for d in plan.delete}
    # a protected level (or one holding a protected level) is never in a plan
    for level in deleted:
        assert level not in protected
        assert level in complete, "a level without a complete backup was deleted"
    # the newest backup's whole lineage and every unarchived level are still there
    assert protected <= after
    # every level keeps at most N complete children beyond protected ones
    for parent in after:
        kids = [c for c in after if c.parent == parent and c in complete]
        if kids:
            n = keep_for(kids[0].kind)
            extra = [c for c in kids if c in protected or any(c.is_ancestor_of(p)
                                                              for p in protected)]
            assert len(kids) <= max(n, 0) + len(extra)
    # and each kept complete level would be kept again: planning again deletes nothing
    again = plan_trim(after, complete & after, keep_for, [newest_leaf], unarchived)
    assert again.empty
    # every level is decided at most once
    decided = [d.level for d in plan.delete + plan.keep]
    assert len(decided) == len(set(decided))


def test_saved_plan_for_a_three_year_tree():
    """The trim issue's scenario, as levels: weekly Sundays 2012-12-02 .. 2013-04-07,
    then 2013-04-09, -10, 2014-01-05, 2014-02-02, 2015-01-04, 2015-01-06."""
    days = [date(2012, 12, 2) + timedelta(weeks=i) for i in range(19)]
    days += [date(2013, 4, 9), date(2013, 4, 10), date(2014, 1, 5), date(2014, 2, 2),
             date(2015, 1, 4), date(2015, 1, 6)]
    levels = tree_of(days)
    leaf = leaf_for(days[-1])
    plan = plan_trim(levels, levels, keep_fn(), [leaf])
    assert plan_summary(plan) == ["2000/2010/2012", "2000/2010/2013"]
    assert [d.reason for d in plan.delete] == ["older than the 2 newest years in 2000/2010"] * 2
    reasons = {str(d.level): d.reason for d in plan.keep}
    assert reasons["2000/2010/2015"] == "the current leaf or its ancestor"
    assert reasons["2000/2010/2014"] == "one of the 2 newest years in 2000/2010"
    assert reasons["2000"] == "the current leaf or its ancestor"


def test_saved_plan_inside_a_month_with_keep_week_3():
    days = [date(2013, 3, 3) + timedelta(weeks=i) for i in range(5)]  # 5 Sundays of March
    levels = tree_of(days)
    leaf = leaf_for(days[-1])
    plan = plan_trim(levels, levels, keep_fn(2, week=3), [leaf])
    assert plan_summary(plan) == ["2000/2010/2013/2013-03/2013-03-03",
                                  "2000/2010/2013/2013-03/2013-03-10"]
    plan = plan_trim(levels, levels, keep_fn(2), [leaf])
    assert len(plan.delete) == 3


def test_levels_without_a_complete_backup_do_not_count_and_stay():
    month = "2000/2010/2013/2013-03"
    weeks = [lv(f"{month}/2013-03-{d:02d}") for d in (3, 10, 17, 24, 31)]
    levels = set(weeks) | set(weeks[0].lineage()[:-1])
    failed = {weeks[3], weeks[4]}  # the two newest weeks hold no complete backup
    plan = plan_trim(levels, levels - failed, keep_fn(), [weeks[4]])
    # the current leaf (31) counts only if complete: 17 and 10 are the two newest that
    # count, 03 goes, and the failed ones stay
    assert plan_summary(plan) == [f"{month}/2013-03-03"]
    reasons = {str(d.level): d.reason for d in plan.keep}
    assert reasons[f"{month}/2013-03-31"] == "the current leaf or its ancestor"
    assert "does not count" in reasons[f"{month}/2013-03-24"]


def test_levels_holding_files_the_bucket_lacks_are_kept_with_their_ancestors():
    days = [date(2011, 1, 2) + timedelta(weeks=i) for i in range(0, 200, 9)]
    levels = tree_of(days)
    leaf = leaf_for(days[-1])
    # a finished year whose files are all still to go off-site: every level of it
    year = lv("2000/2010/2011")
    unarchived = [level for level in levels if level == year or year.is_ancestor_of(level)]
    plan = plan_trim(levels, levels, keep_fn(), [leaf], unarchived)
    assert not any(year == d.level or year.is_ancestor_of(d.level) for d in plan.delete)
    inside = [d for d in plan.keep if year == d.level or year.is_ancestor_of(d.level)]
    assert inside and all("bucket does not hold" in d.reason for d in inside)
    # one week that is not in the bucket keeps its month and year, nothing more
    week = max(level for level in levels if level.kind == "week" and level.names[2] == "2012")
    plan = plan_trim(levels, levels, keep_fn(), [leaf], [week])
    kept = {d.level for d in plan.keep}
    assert set(week.lineage()) <= kept
    assert not any(week == d.level or d.level.is_ancestor_of(week) for d in plan.delete)
