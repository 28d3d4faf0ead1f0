"""What goes off-site when, and what the bucket keeps (cya/core/retention.py): ``eligible``
per cadence, ``unsafe_levels``, ``plan_prune`` and ``keep_points``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cya.core.chains import restorable
from cya.core.names import format_time
from cya.core.retention import (
    CADENCES,
    Point,
    RemoteObject,
    eligible,
    keep_points,
    plan_prune,
    plan_trim,
    unsafe_levels,
)
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import TreeView
from tests.unit.trees import backup_moments, grow, view_of

few = settings(max_examples=20)


def keep_fn(keep=2, **by_kind):
    return lambda kind: by_kind.get(kind, keep)


# --- eligible -------------------------------------------------------------------------------

def period_ended(kind: str, level: Level, newest: Level) -> bool:
    """Whether the period of ``level`` (of this kind) lies wholly before the newest leaf's,
    said in dates: a week ends 7 days after its start, a month or a year when a later one
    begins."""
    if kind == "week":
        return date.fromisoformat(newest.names[4]) >= date.fromisoformat(level.names[4]) + \
            timedelta(days=7)
    if kind == "month":
        return newest.names[3] > level.names[3]  # YYYY-MM: string order is time order
    return int(newest.names[2]) > int(level.names[2])


@settings(max_examples=12)
@given(backup_moments)
def test_eligible_levels_per_cadence(moments):
    view = view_of(grow(moments))
    newest = leaf_for(max(moments).date())
    assert eligible(view, "backup") == view.levels()
    for kind, depth in (("week", 5), ("month", 4), ("year", 3)):
        expected = [level for level in view.levels() if len(level.names) >= depth
                    and period_ended(kind, Level(level.names[:depth]), newest)]
        assert eligible(view, kind) == expected, kind
        # nothing of the newest backup's own week, month or year goes before it ends
        assert not set(eligible(view, kind)) & set(newest.lineage()[depth - 1:])
    # a coarser cadence sends no file that a finer one would still hold back
    def sent(cadence):
        return set().union(*(view.files[level] for level in eligible(view, cadence)))

    assert sent("year") <= sent("month") <= sent("week") <= sent("backup")


def test_eligible_by_hand():
    # backups on Sun 2012-12-02 and Tue 2013-01-01 (week of 2012-12-30, still December)
    moments = [datetime(2012, 12, 2, 12, tzinfo=UTC), datetime(2013, 1, 1, 12, tzinfo=UTC)]
    view = view_of(grow(moments))
    assert [str(level) for level in eligible(view, "week")] == \
        ["2000/2010/2012/2012-12/2012-12-02"]
    assert eligible(view, "month") == [] and eligible(view, "year") == []
    # a backup in January's first week ends December and the year 2012
    view = view_of(grow(moments + [datetime(2013, 1, 6, 12, tzinfo=UTC)]))
    assert [str(level) for level in eligible(view, "year")] == [
        "2000/2010/2012", "2000/2010/2012/2012-12", "2000/2010/2012/2012-12/2012-12-02",
        "2000/2010/2012/2012-12/2012-12-30"]
    empty = TreeView({})
    assert all(eligible(empty, cadence) == [] for cadence in CADENCES)


# --- unsafe_levels --------------------------------------------------------------------------

@few
@given(backup_moments, st.data())
def test_unsafe_levels_hold_a_file_the_bucket_was_not_seen_to_hold(moments, data):
    tree = grow(moments)
    view = view_of(tree)
    every = sorted(set().union(*tree.values()))
    safe = data.draw(st.sets(st.sampled_from(every)), label="seen in the bucket")
    asked = data.draw(st.lists(st.sampled_from(sorted(tree) + [Level(("2200",))]),
                               unique=True), label="levels asked about")
    unsafe = unsafe_levels(view, asked, safe)
    assert unsafe == [level for level in asked if tree.get(level, set()) - safe]
    assert unsafe_levels(view, asked, every) == []
    assert unsafe_levels(view, asked, ()) == [level for level in asked if tree.get(level)]


# --- plan_prune -----------------------------------------------------------------------------

BAGS = [f"bags/2012/{i:02d}.tar" for i in range(8)]


@st.composite
def prune_inputs(draw):
    count = draw(st.integers(0, 6))
    points = [Point(f"backup {i}", draw(st.booleans()),
                    frozenset(draw(st.sets(st.sampled_from(BAGS), max_size=4))),
                    (f"backups/{i}.json",)) for i in range(count)]
    keys = draw(st.sets(st.sampled_from(BAGS + [f"backups/{i}.json" for i in range(count)])))
    objects = [RemoteObject(key, draw(st.integers(1, 10**9)),
                            draw(st.floats(0, 400, allow_nan=False)), draw(st.booleans()))
               for key in sorted(keys)]
    return points, objects, draw(st.integers(0, 365))


@settings(max_examples=40)
@given(prune_inputs())
def test_prune_never_touches_what_a_kept_point_needs_nor_young_deep_archive(inputs):
    points, objects, min_age = inputs
    plan = plan_prune(points, objects, min_age)
    kept = [p for p in points if p.keep]
    needed = {key for p in kept for key in p.needs | set(p.records)}
    deleted = {o.key for o in plan.delete}
    deferred = {o.key for o, _ in plan.defer}
    assert not (deleted | deferred) & needed  # a kept point never loses a bag it needs
    for item in plan.delete:
        assert not item.deep or item.age_days >= min_age
    for item, days in plan.defer:
        assert item.deep and item.age_days < min_age and days == min_age - item.age_days
    # everything no kept point needs goes, now or later
    assert deleted | deferred == {o.key for o in objects} - needed
    assert not deleted & deferred
    assert sorted(p.name for p in plan.drop) == sorted(p.name for p in points if not p.keep)
    assert sorted(p.name for p in plan.keep) == sorted(p.name for p in kept)
    assert plan.empty == (not plan.drop and not deleted and not deferred)
    # planning again after applying the plan deletes nothing and drops nothing
    again = plan_prune(kept, [o for o in objects if o.key not in deleted], min_age)
    assert again.delete == () and again.drop == ()
    assert {o.key for o, _ in again.defer} == deferred


def test_prune_by_hand():
    kept = Point("backup A", True, frozenset({"b1", "b2"}), ("backups/A.json",))
    gone = Point("backup B", False, frozenset({"b2", "b3", "b4"}), ("backups/B.json",))
    objects = [RemoteObject("b1", 10, 500), RemoteObject("b2", 10, 500),
               RemoteObject("b3", 10, 200), RemoteObject("b4", 10, 20),
               RemoteObject("backups/B.json", 1, 1, deep=False)]
    plan = plan_prune([kept, gone], objects, 180)
    assert [o.key for o in plan.delete] == ["b3", "backups/B.json"]
    assert [(o.key, days) for o, days in plan.defer] == [("b4", 160)]
    assert plan.drop == (gone,) and plan.keep == (kept,)
    assert plan_prune([], [], 180).empty


# --- keep_points ----------------------------------------------------------------------------

def trimmed(tree: dict[Level, set[str]], keep_for) -> dict[Level, set[str]]:
    """The tree after its own trim (the newest leaf kept)."""
    view = view_of(tree)
    plan = plan_trim(set(tree), view.chained(), keep_for, [view.newest_leaf()])
    gone = [d.level for d in plan.delete]
    return {level: names for level, names in tree.items()
            if not any(level == g or g.is_ancestor_of(level) for g in gone)}


def archived_points(tree: dict[Level, set[str]]) -> dict[str, Level]:
    """Every backup archived as it was made (cadence "backup"): its record names the level
    that restored it best then."""
    return {format_time(r.time): r.level for r in restorable(view_of(tree))}


def held_by(tree: dict[Level, set[str]]) -> set[str]:
    """The backup times a tree can restore."""
    return {format_time(r.time) for r in restorable(view_of(tree))}


def decide(points: dict[str, Level], tree: dict[Level, set[str]], keep_for) -> dict:
    """keep_points for ``points`` beside ``tree`` as it is now (its newest leaf current)."""
    view = view_of(tree)
    return keep_points(points, held_by(tree), view.levels(), view.chained(),
                       [view.newest_leaf()], keep_for, [], 0)


def kept_after_trim(moments, keep_for) -> tuple[dict, dict, set[str], dict]:
    """Backups at ``moments``, each archived as made, then the tree trimmed by its own
    rules: (the points, the trimmed tree, what it still holds, keep_points' decisions)."""
    tree = grow(moments)
    points = archived_points(tree)
    after = trimmed(tree, keep_for)
    return points, after, held_by(after), decide(points, after, keep_for)


@few
@given(backup_moments, st.integers(1, 3))
def test_a_point_the_tree_holds_is_kept(moments, keep):
    points, _, held, decisions = kept_after_trim(moments, keep_fn(keep))
    assert set(decisions) == {f"backup {t}" for t in points}
    for time in held:
        assert decisions[f"backup {time}"] == (True, "the tree holds it")
    # the newest backup is always held, so always kept
    assert decisions[f"backup {format_time(max(moments))}"][0]


def test_a_point_whose_level_the_trim_rules_delete_is_dropped():
    # daily backups through March 2013 (Sunday weeks: 03-03 .. 03-31)
    moments = [datetime(2013, 3, 3, 12, tzinfo=UTC) + timedelta(days=d) for d in range(29)]
    points, after, _, decisions = kept_after_trim(moments, keep_fn(2))
    assert sorted(level.name for level in after if level.kind == "week") == [
        "2013-03-24", "2013-03-31"]
    # a Tuesday of a trimmed week: not held, and its week is beyond the 2 newest
    keep, why = decisions["backup 20130305T120000Z"]
    assert not keep and "2000/2010/2013/2013-03/2013-03-03" in why
    # a Sunday (the first backup of its week) is still held by the month's chain
    assert decisions["backup 20130310T120000Z"] == (True, "the tree holds it")
    # the newest two weeks are kept whole
    assert all(decisions[f"backup {t}"][0] for t in points if t >= "20130324")
    # with keep_week 5 the rules keep every week of March: nothing is dropped
    decisions = decide(points, after, keep_fn(2, week=5))
    assert all(keep for keep, _ in decisions.values())


def test_finished_years_are_kept_within_keep_years():
    years = ["2000/2010/2011", "2000/2010/2012", "2000/2010/2013"]
    every = keep_points({}, (), (), (), (), keep_fn(), years, 0)
    assert every == {f"year {y}": (True, "a finished year within keep_years") for y in years}
    newest = keep_points({}, (), (), (), (), keep_fn(), years, 2)
    assert [newest[f"year {y}"][0] for y in years] == [False, True, True]
    assert newest["year 2000/2010/2011"] == (False, "beyond keep_years")
    assert keep_points({}, (), (), (), (), keep_fn(), [], 0) == {}


@few
@given(backup_moments, st.integers(1, 3))
@example([datetime(2000, 1, 2, tzinfo=UTC), datetime(2000, 2, 1, tzinfo=UTC)], 1)
def test_an_empty_tree_drops_nothing_the_tree_kept(moments, keep):
    """After the machine is lost (``cya recover``: an empty tree, the newest point leading,
    as archive prune does it), the bucket keeps every point it kept while the tree was
    there: losing the tree must not shorten the history off-site."""
    keep_for = keep_fn(keep)
    points, _, _, before = kept_after_trim(moments, keep_for)
    still = {t: level for t, level in points.items() if before[f"backup {t}"][0]}
    lost = keep_points(still, (), (), (), [max(still.values())], keep_for, [], 0)
    assert {name for name, (keep, _) in lost.items() if not keep} == set()
