"""Questions about a snapshot of the tree (cya/core/treeview.py), asked of grown trees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cya.core.names import backup_sets
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import FileInfo, TreeView
from tests.unit.trees import backup_moments, grow, names_of_set, size_of, view_of

few = settings(max_examples=20)


@few
@given(backup_moments, st.data())
def test_an_empty_file_counts_as_missing(moments, data):
    tree = grow(moments)
    view = view_of(tree)
    level = data.draw(st.sampled_from(sorted(tree)), label="level")
    empty = data.draw(st.sampled_from(sorted(tree[level])), label="emptied file")
    info = {lv: dict(found) for lv, found in view.info.items()}
    info[level][empty] = FileInfo(0, info[level][empty].inode, info[level][empty].links)
    emptied = TreeView(view.files, info)
    assert emptied.sets(level) == backup_sets(tree[level] - {empty})
    assert emptied.backups(level) == [s for s in backup_sets(tree[level] - {empty})
                                      if s.complete]
    for other in tree:
        if other != level:
            assert emptied.sets(other) == view.sets(other)


@few
@given(backup_moments)
def test_every_level_of_a_grown_tree_holds_complete_backups(moments):
    tree = grow(moments)
    for view in (view_of(tree), view_of(tree, with_info=False)):  # sizes unknown: all there
        assert view.chained() == frozenset(tree)
        for level in tree:
            assert view.sets(level) == backup_sets(tree[level])
            assert view.backups(level) == view.sets(level)
        assert view.levels() == sorted(tree)
        assert view.newest() == max(moments)
        assert view.newest_leaf() == leaf_for(max(moments).date())


@few
@given(backup_moments, st.data())
def test_chained_levels_are_those_holding_a_complete_backup(moments, data):
    tree = grow(moments)
    broken = data.draw(st.sets(st.sampled_from(sorted(tree))), label="levels losing manifests")
    damaged = {level: ({n for n in names if ".manifest" not in n} if level in broken
                       else names) for level, names in tree.items()}
    damaged[Level(("2200",))] = set()  # an empty level directory
    view = view_of(damaged)
    assert view.chained() == frozenset(tree) - broken
    assert all(view.backups(level) == [] for level in broken)
    assert all(not s.complete for level in broken for s in view.sets(level))
    if broken == set(tree):
        assert view.newest() is None and view.newest_leaf() is None


def test_newest_and_newest_leaf_by_hand():
    t0 = datetime(2012, 12, 2, 12, tzinfo=UTC)
    t1 = t0 + timedelta(days=1)
    year = Level(("2000", "2010", "2012"))
    leaf = leaf_for(t0.date())
    # an incomplete newer set does not count
    unfinished = names_of_set(t0, t1, False)[:-1]
    view = TreeView({year: frozenset(names_of_set(t0, t0, True)),
                     leaf: frozenset(names_of_set(t0, t0, True) + unfinished)})
    assert view.newest() == t0 and view.newest_leaf() == leaf
    # the newest backup held only above the leaves (its week trimmed away): no leaf
    view = TreeView({year: frozenset(names_of_set(t0, t0, True) + names_of_set(t0, t1, False)),
                     leaf: frozenset(names_of_set(t0, t0, True))})
    assert view.newest() == t1 and view.newest_leaf() is None
    assert TreeView({}).newest() is None and TreeView({}).newest_leaf() is None
    assert TreeView({}).chained() == frozenset() and TreeView({}).total_bytes() == 0


@few
@given(backup_moments)
def test_unique_and_total_bytes_count_each_inode_once(moments):
    tree = grow(moments)
    view = view_of(tree)
    holders: dict[str, int] = {}
    for names in tree.values():
        for name in names:
            holders[name] = holders.get(name, 0) + 1
    for level, names in tree.items():
        assert view.unique_bytes(level) == sum(size_of(n) for n in names if holders[n] == 1)
        assert view.size(level, tuple(names)) == sum(size_of(n) for n in names)
        assert view.size(level, ("not-there",)) == 0
    assert view.total_bytes() == sum(size_of(n) for n in holders)
    assert view.total_bytes() <= sum(view.size(level, tuple(tree[level])) for level in tree)


def test_bytes_by_hand():
    a, b = Level(("2000",)), Level(("2000", "2010"))
    view = TreeView({a: frozenset({"x", "y"}), b: frozenset({"x", "z"})},
                    {a: {"x": FileInfo(100, 1, 2), "y": FileInfo(10, 2, 1)},
                     b: {"x": FileInfo(100, 1, 2), "z": FileInfo(1, 3, 1)}})
    assert view.total_bytes() == 111  # x once
    assert (view.unique_bytes(a), view.unique_bytes(b)) == (10, 1)
    assert view.size(a, ("x", "y", "z")) == 110  # z is not in a
