"""Reading the dates and times users type (``--now``, later ``--date``)."""

from __future__ import annotations

from datetime import datetime, tzinfo

from dateutil import parser


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
