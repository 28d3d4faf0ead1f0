"""Showing times to people, and reading the wall clock for records (not for backups:
the backup clock is the value cli.py reads once, from --now or the system)."""

from __future__ import annotations

import time as wallclock
from datetime import datetime


def show_time(moment: datetime) -> str:
    """A backup time as users read it: local time, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()


RECORD_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # times in records: the catalog, the lock, manifests


def iso(moment: datetime) -> str:
    """A time for JSON output: ISO 8601 with its offset (``2027-01-20T03:17:00Z``)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def iso_record(text: str | None) -> str | None:
    """A record time (the catalog's, the lock's) for JSON output, ISO 8601 with offset."""
    return iso(parse_record_time(text)) if text else None


def wall_time() -> str:
    """The real time now, for the record of when a run started or finished."""
    return wallclock.strftime(RECORD_FORMAT)


def record_time(moment: datetime) -> str:
    return moment.strftime(RECORD_FORMAT)


def parse_record_time(text: str) -> datetime:
    return datetime.strptime(text, RECORD_FORMAT)  # noqa: DTZ007 (the format ends in %z)
