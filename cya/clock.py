"""Showing times to people, and reading the wall clock for records (not for backups:
the backup clock is the value cli.py reads once, from --now or the system)."""

from __future__ import annotations

import time as wallclock
from datetime import datetime


def show_time(moment: datetime) -> str:
    """A backup time as users read it: local time, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def wall_time() -> str:
    """The real time now, for the record of when a run started or finished."""
    return wallclock.strftime("%Y-%m-%dT%H:%M:%S%z")
