"""The timeline's shading, from backup times alone."""

from __future__ import annotations

from datetime import UTC, date, datetime

from cya.core.timeline import shade_days


def noon(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00+00:00")


def test_shades_by_the_gap_to_the_nearest_earlier_point():
    local = [noon("2013-01-01"), noon("2013-01-03"), noon("2013-03-01")]
    archived = [noon("2013-02-10")]
    shades = shade_days(local, archived, UTC)
    assert shades[date(2013, 1, 1)] == "day"
    assert shades[date(2013, 1, 2)] == "week"
    assert shades[date(2013, 1, 10)] == "week"
    assert shades[date(2013, 1, 11)] == "month"
    assert shades[date(2013, 2, 9)] == "older"
    assert shades[date(2013, 2, 10)] == "archive"  # the archive gets nearer than the tree
    assert shades[date(2013, 2, 28)] == "archive"
    assert shades[date(2013, 3, 1)] == "day"
    assert min(shades) == date(2013, 1, 1) and max(shades) == date(2013, 3, 1)
    assert shade_days([], [], UTC) == {}


def test_days_are_local():
    from datetime import timedelta, timezone

    late = [datetime(2013, 1, 1, 23, 30, tzinfo=UTC)]
    assert list(shade_days(late, [], timezone(timedelta(hours=2)))) == [date(2013, 1, 2)]
