"""Reading the dates and times users type (``--now``, ``--date``, ``--max-age``)."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, tzinfo

from dateutil import parser
from dateutil.relativedelta import relativedelta

_INTERVAL_PART = re.compile(r"(\d+)([smhDWMY])")
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


def parse_moment(text: str, local: tzinfo) -> datetime:
    """Return the aware datetime an ISO date or date-time names; naive ones are local time.

    Raise ValueError if ``text`` is not one.
    """
    try:
        moment = parser.isoparse(text.strip())
    except (ValueError, OverflowError) as error:
        raise ValueError(str(error)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local)
    return moment


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
        return now - interval
    moment = parse_moment(text, local)
    if re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", text):
        moment = datetime.combine(moment.date(), time.max, tzinfo=moment.tzinfo)
    return moment


def parse_duration(text: str) -> timedelta | None:
    """Return a fixed length such as ``36h`` or ``2D`` (months and years not allowed)."""
    interval = parse_interval(text)
    if interval is None or interval.months or interval.years:
        return None
    return timedelta(days=interval.days, hours=interval.hours, minutes=interval.minutes,
                     seconds=interval.seconds)
