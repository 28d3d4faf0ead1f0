"""What the default retention keeps: python -m benchmarks.retention [--years N]

Runs cya's own placement and trim (names only, no duplicity: the pure core) for a
daily backup at noon from 2021-01-01, trimming after every backup as ``cya backup``
does, and prints, after 1, 2 and 5 years, how far before an asked date the nearest
restorable backup is — from the tree alone, and with a bucket (cadence "backup",
keep_years = 0: the bucket keeps what the tree keeps and every finished year as the
tree held it when the year ended). The table in README.rst ("What the defaults keep")
is this output.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta

from cya.core.chains import restorable
from cya.core.names import complete_backup_times, format_time
from cya.core.placement import plan_placement
from cya.core.retention import finished_years, plan_trim
from cya.core.timescale import Level, leaf_for
from cya.core.treeview import TreeView

START = date(2021, 1, 1)
AGES = [1, 3, 7, 14, 30, 60, 90, 180, 365, 2 * 365, 3 * 365, 4 * 365]


def _set(start: datetime, end: datetime, full: bool) -> list[str]:
    stamp = format_time(start) if full else f"{format_time(start)}.to.{format_time(end)}"
    kind, signatures = ("full", "full-signatures") if full else ("inc", "new-signatures")
    return [f"duplicity-{kind}.{stamp}.vol1.difftar.gpg",
            f"duplicity-{signatures}.{stamp}.sigtar.gpg",
            f"duplicity-{kind}.{stamp}.manifest.gpg"]


def simulate(days: int, snapshots: set[int]) -> dict[int, tuple[set[datetime], set[datetime]]]:
    """Day number -> (backups the tree can restore, backups the bucket can restore)."""
    tree: dict[Level, set[str]] = {}
    year_ends: set[datetime] = set()  # what finished years held when they finished
    out = {}
    for number in range(days):
        time = datetime.combine(START + timedelta(days=number), datetime.min.time(),
                                tzinfo=UTC).replace(hour=12)
        view = TreeView({level: frozenset(names) for level, names in tree.items()})
        before = finished_years(view)
        leaf = leaf_for(time.date())
        placement = plan_placement(time, leaf, view.chained(), view.newest())
        if placement.base is None:
            new = _set(time, time, True)
        else:
            newest = complete_backup_times(tree[placement.base])[-1]
            new = _set(newest, time, False)
            for level in placement.new_levels:
                tree[level] = set(tree[placement.base])
        for level in placement.link_into:
            tree.setdefault(level, set()).update(new)
        view = TreeView({level: frozenset(names) for level, names in tree.items()})
        for year in finished_years(view):
            if year not in before:  # the year finished now: keep it as the tree held it
                year_ends |= {r.time for r in restorable(view)
                              if r.level == year or year.is_ancestor_of(r.level)}
        plan = plan_trim(view.levels(), view.chained(), lambda kind: 2, [leaf])
        for decision in plan.delete:
            for level in list(tree):
                if level == decision.level or decision.level.is_ancestor_of(level):
                    del tree[level]
        if number + 1 in snapshots:
            held = {r.time for r in restorable(TreeView(
                {level: frozenset(names) for level, names in tree.items()}))}
            out[number + 1] = (held, held | year_ends)
    return out


def gap(points: set[datetime], asked: datetime) -> str:
    earlier = [p for p in points if p <= asked]
    if not earlier:
        return "—"
    days = (asked - max(earlier)).total_seconds() / 86400
    return "same day" if days < 1 else f"{days:.0f} d"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retention")
    parser.add_argument("--years", type=int, nargs="*", default=[1, 2, 5])
    args = parser.parse_args()
    snapshots = {365 * years for years in args.years}
    results = simulate(max(snapshots), snapshots)
    header = ["asked, days back"] + [f"{y} y: tree" for y in args.years] + [
        f"{y} y: + bucket" for y in args.years]
    rows = []
    for age in AGES:
        row = [str(age)]
        for tree_only in (True, False):
            for years in args.years:
                held, with_bucket = results[365 * years]
                now = datetime.combine(START + timedelta(days=365 * years - 1),
                                       datetime.min.time(), tzinfo=UTC).replace(hour=12)
                asked = now - timedelta(days=age)
                row.append(gap(held if tree_only else with_bucket, asked) if age < 365 * years
                           else "")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("=" * w for w in widths)
    print("How far before the asked date the nearest restorable backup is (daily backups, "
          "default trim keep = 2):")
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)
    for years in args.years:
        held, with_bucket = results[365 * years]
        print(f"after {years} year(s): the tree restores {len(held)} backups, the tree and "
              f"the bucket {len(with_bucket)}")


if __name__ == "__main__":
    main()
