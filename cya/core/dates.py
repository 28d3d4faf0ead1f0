"""Reading the dates and times users type (``--now``, ``--date``, ``--max-age``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo

from dateutil import parser, tz
from dateutil.relativedelta import relativedelta

_INTERVAL_PART = re.compile(r"([0-9]+)([smhDWMY])")
_UNITS = {
    "s": lambda n: relativedelta(seconds=n),
    "m": lambda n: relativedelta(minutes=n),
    "h": lambda n: relativedelta(hours=n),
    "D": lambda n: relativedelta(days=n),
    "W": lambda n: relativedelta(weeks=n),
    "M": lambda n: relativedelta(months=n),
    "Y": lambda n: relativedelta(years=n),
}
DATE_EXAMPLES = "2013-03-01, 2013-03-01T18:30, 3D, 2W, 1M, 1Y or now"
EARLIEST_YEAR, LATEST_YEAR = 1970, 2099  # what duplicity's time stamps can hold


class NonexistentTime(ValueError):
    """A local time the clocks skipped (the spring-forward gap of daylight saving time)."""


def parse_moment(text: str, local: tzinfo) -> datetime:
    """Return the aware datetime an ISO date or date-time names; naive ones are local time
    (in the autumn's repeated hour, the first of the two).

    Raise NonexistentTime for a local time the clocks skipped, ValueError if ``text`` is
    not a date or time.
    """
    try:
        moment = parser.isoparse(text.strip())
    except (ValueError, OverflowError) as error:
        raise ValueError(str(error)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local)
        if not tz.datetime_exists(moment):
            raise NonexistentTime(f"{text} does not exist in local time: the clocks "
                                  "skipped that hour (daylight saving time)")
    return moment


def out_of_range(moment: datetime) -> bool:
    """Whether duplicity cannot handle this time (before 1970, from 2100)."""
    return not EARLIEST_YEAR <= moment.astimezone(UTC).year <= LATEST_YEAR


def parse_interval(text: str) -> relativedelta | None:
    """Return the length a duplicity-style interval (``3D``, ``2W``, ``1h30m``) names."""
    text = text.strip()
    parts = _INTERVAL_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    total = relativedelta()
    for number, unit in parts:
        total += _UNITS[unit](int(number))
    return total


def parse_when(text: str, now: datetime, local: tzinfo) -> datetime:
    """Return the moment ``--date`` names.

    An ISO date means the end of that day (local time), an ISO date-time that moment,
    an interval that long before ``now``, and ``now`` itself now. Raise ValueError.
    """
    text = text.strip()
    if text.lower() == "now":
        return now
    interval = parse_interval(text)
    if interval is not None:
        try:
            return now - interval
        except (OverflowError, ValueError):
            raise ValueError(f"{text} reaches before the year 1") from None
    if re.fullmatch(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}", text):
        # the end of that day: it exists even when the clocks skipped its midnight
        try:
            day = parser.isoparse(text).date()
        except (ValueError, OverflowError) as error:
            raise ValueError(str(error)) from None
        return datetime.combine(day, time.max, tzinfo=local)
    return parse_moment(text, local)


def parse_duration(text: str) -> timedelta | None:
    """Return a fixed length such as ``36h`` or ``2D`` (months and years not allowed;
    None for one too long for the calendar)."""
    interval = parse_interval(text)
    if interval is None or interval.months or interval.years:
        return None
    try:
        return timedelta(days=interval.days, hours=interval.hours, minutes=interval.minutes,
                         seconds=interval.seconds)
    except OverflowError:
        return None
