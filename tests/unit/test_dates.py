"""Reading the dates and times users type (cya/core/dates.py): ``--date``, ``--now``,
``--max-age`` and the hooks' timeout."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from dateutil import tz
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from cya.core.dates import (
    NonexistentTime,
    out_of_range,
    parse_duration,
    parse_interval,
    parse_moment,
    parse_when,
)

BERLIN = tz.gettz("Europe/Berlin")
NOW = datetime(2013, 3, 31, 18, 30, tzinfo=BERLIN)
FIXED = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1),
         "D": timedelta(days=1), "W": timedelta(weeks=1)}
CALENDAR = {"M": relativedelta(months=1), "Y": relativedelta(years=1)}

fixed_parts = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(FIXED))),
                       min_size=1, max_size=4)
any_parts = st.lists(st.tuples(st.integers(0, 500), st.sampled_from(sorted(FIXED | CALENDAR))),
                     min_size=1, max_size=4)
nows = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),
                    timezones=st.just(UTC))


def spelled(parts) -> str:
    return "".join(f"{number}{unit}" for number, unit in parts)


few = settings(max_examples=50)


# --- parse_when -----------------------------------------------------------------------------

def test_now_is_now():
    for text in ("now", "NOW", " Now "):
        assert parse_when(text, NOW, BERLIN) == NOW


def test_a_date_means_the_end_of_that_local_day():
    end = datetime(2013, 3, 1, 23, 59, 59, 999999, tzinfo=BERLIN)
    assert parse_when("2013-03-01", NOW, BERLIN) == end
    assert parse_when("20130301", NOW, BERLIN) == end
    assert parse_when(" 2013-03-01 ", NOW, BERLIN) == end
    # a day whose clocks change still ends at 23:59:59 local time
    assert parse_when("2013-03-31", NOW, BERLIN) == datetime.combine(
        datetime(2013, 3, 31).date(), time.max, tzinfo=BERLIN)
    assert parse_when("2013-03-31", NOW, BERLIN).utcoffset() == timedelta(hours=2)


def test_a_date_time_means_that_moment():
    assert parse_when("2013-03-01T18:30", NOW, BERLIN) == datetime(2013, 3, 1, 18, 30,
                                                                   tzinfo=BERLIN)
    assert parse_when("2013-03-01T18:30:05", NOW, BERLIN).second == 5
    plus5 = parse_when("2013-03-01T18:30+05:00", NOW, BERLIN)
    assert plus5.utcoffset() == timedelta(hours=5)
    assert plus5 == datetime(2013, 3, 1, 13, 30, tzinfo=UTC)
    assert parse_when("2013-03-01T18:30Z", NOW, BERLIN) == datetime(2013, 3, 1, 18, 30,
                                                                    tzinfo=UTC)


def test_an_interval_means_that_long_before_now():
    assert parse_when("3D", NOW, BERLIN) == NOW - timedelta(days=3)
    assert parse_when("2W", NOW, BERLIN) == NOW - timedelta(weeks=2)
    assert parse_when("1h30m", NOW, BERLIN) == NOW - timedelta(minutes=90)
    # months and years are calendar months and years: 31 March minus a month is 28 February
    assert parse_when("1M", NOW, BERLIN) == datetime(2013, 2, 28, 18, 30, tzinfo=BERLIN)
    assert parse_when("1Y", NOW, BERLIN) == datetime(2012, 3, 31, 18, 30, tzinfo=BERLIN)


@few
@given(fixed_parts, nows)
def test_a_generated_interval_gives_back_its_length(parts, now):
    length = sum((number * FIXED[unit] for number, unit in parts), timedelta())
    assert now - parse_when(spelled(parts), now, UTC) == length
    assert parse_duration(spelled(parts)) == length
    assert parse_duration(f" {spelled(parts)} ") == length


@few
@given(any_parts, nows)
def test_a_generated_calendar_interval_gives_back_its_length(parts, now):
    expected = relativedelta()
    for number, unit in parts:
        expected += number * (FIXED | CALENDAR)[unit] if unit in CALENDAR else relativedelta(
            seconds=number * FIXED[unit].total_seconds())
    assert parse_interval(spelled(parts)) == expected
    assert parse_when(spelled(parts), now, UTC) == now - expected
    if any(unit in CALENDAR and number for number, unit in parts):
        assert parse_duration(spelled(parts)) is None  # not a fixed length


@pytest.mark.parametrize("text", ["", "3", "D", "3D 2h", "3x", "-3D", "3.5D", "D3", "3DD",
                                  "3d", "1w", "1y", "now-1D"])
def test_what_is_not_an_interval(text):
    assert parse_interval(text) is None
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["", "yesterday", "3x", "2013-02-30", "2013-13-01",
                                  "2013-03-01T25:00", "-3D", "1.5D"])
def test_what_is_not_a_date(text):
    with pytest.raises(ValueError):
        parse_when(text, NOW, BERLIN)


def test_a_date_whose_midnight_was_skipped_still_means_the_end_of_that_day():
    sao_paulo = tz.gettz("America/Sao_Paulo")
    assert parse_when("2018-11-04", NOW, sao_paulo) == datetime(
        2018, 11, 4, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-2)))


def test_an_interval_too_long_for_the_calendar_is_refused_not_crashed():
    for text in ("99999999999D", "9999999999999999999999h", "100000000000W"):
        assert parse_duration(text) is None
        with pytest.raises(ValueError):
            parse_when(text, NOW, BERLIN)


# --- parse_moment ---------------------------------------------------------------------------

def test_a_naive_time_is_local_and_an_offset_is_kept():
    assert parse_moment("2013-03-01T18:30", BERLIN) == datetime(2013, 3, 1, 18, 30,
                                                                tzinfo=BERLIN)
    assert parse_moment("2013-03-01", BERLIN) == datetime(2013, 3, 1, tzinfo=BERLIN)
    assert parse_moment("2013-03-01T18:30-03:00", BERLIN).utcoffset() == timedelta(hours=-3)
    with pytest.raises(ValueError):
        parse_moment("18:30 yesterday", BERLIN)


def test_a_local_time_the_clocks_skipped_is_refused():
    for text in ("2021-03-28T02:00", "2021-03-28T02:30", "2021-03-28T02:59:59"):
        with pytest.raises(NonexistentTime, match="daylight saving"):
            parse_moment(text, BERLIN)
    # just outside the gap, and inside it with an offset, are fine
    assert parse_moment("2021-03-28T01:59:59", BERLIN).utcoffset() == timedelta(hours=1)
    assert parse_moment("2021-03-28T03:00", BERLIN).utcoffset() == timedelta(hours=2)
    assert parse_moment("2021-03-28T02:30+01:00", BERLIN) == datetime(2021, 3, 28, 1, 30,
                                                                      tzinfo=UTC)
    assert issubclass(NonexistentTime, ValueError)  # callers that catch ValueError see it


def test_the_repeated_autumn_hour_means_the_first_of_the_two():
    first = parse_moment("2021-10-31T02:30", BERLIN)
    assert tz.datetime_ambiguous(first)
    assert first.utcoffset() == timedelta(hours=2)  # still summer time
    # (an ambiguous time never compares equal across zones: compare in UTC)
    assert first.astimezone(UTC) == datetime(2021, 10, 31, 0, 30, tzinfo=UTC)
    assert parse_moment("2021-10-31T02:30+01:00", BERLIN) == datetime(2021, 10, 31, 1, 30,
                                                                      tzinfo=UTC)


@settings(max_examples=50)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2098, 1, 1)))
def test_every_local_time_either_parses_to_itself_or_is_refused_as_skipped(moment):
    moment = moment.replace(microsecond=0)
    text = moment.isoformat()
    try:
        parsed = parse_moment(text, BERLIN)
    except NonexistentTime:
        assert not tz.datetime_exists(moment.replace(tzinfo=BERLIN))
        return
    assert parsed.replace(tzinfo=None) == moment and parsed.tzinfo is BERLIN
    assert parsed.fold == 0


# --- out_of_range ---------------------------------------------------------------------------

def test_out_of_range_is_the_utc_years_duplicity_can_hold():
    assert out_of_range(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert not out_of_range(datetime(1970, 1, 1, tzinfo=UTC))
    assert not out_of_range(datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert out_of_range(datetime(2100, 1, 1, tzinfo=UTC))
    # the UTC year decides, not the local one
    assert not out_of_range(datetime(2100, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))
    assert out_of_range(datetime(2099, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))))
    assert out_of_range(datetime(1970, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))


@few
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1),
                    timezones=st.just(UTC)))
def test_out_of_range_agrees_with_the_years(moment):
    assert out_of_range(moment) == (not 1970 <= moment.year <= 2099)
