"""``cya timeline [--html FILE]``: a calendar of restorable points, each day shaded by how
near to it a restore gets (core.timeline); archived years from the catalog."""

from __future__ import annotations

import html
from datetime import tzinfo
from pathlib import Path

from cya.config import Settings
from cya.core.timeline import SHADES, Month, calendar
from cya.fsutil import atomic_write
from cya.opentree import open_tree

COLOURS = {"day": "#1b5e20", "week": "#43a047", "month": "#81c784", "older": "#c8e6c9",
           "archive": "#90caf9", None: "#f5f5f5"}
LEGEND = {"day": "a backup of that day", "week": "one at most 7 days earlier",
          "month": "at most 31 days earlier", "older": "older",
          "archive": "nearer in the archive"}


def run(settings: Settings, tz: tzinfo) -> list[Month]:
    with open_tree(settings, write=False, locked=False) as opened:
        archived = None
        if opened.catalog.archived_years():
            from cya.archive.retrieve import archived_view

            archived = archived_view(opened.catalog)
        return calendar(opened.view, tz, archived)


def as_json(rows: list[Month]) -> dict:
    """``cya timeline --json``: every day of every month with its shade (None: nothing
    restores it)."""
    return {"version": 1, "legend": {kind: text for kind, text in LEGEND.items()},
            "months": [{"month": f"{row.first:%Y-%m}",
                        "days": [{"date": row.first.replace(day=n + 1).isoformat(),
                                  "shade": kind} for n, kind in enumerate(row.days)]}
                       for row in rows]}


def legend() -> str:
    return "  ".join(f"{SHADES[kind]} {text}" for kind, text in LEGEND.items()) + \
        "  · nothing"


def write_html(rows: list[Month], path: Path) -> None:
    """A self-contained HTML calendar, written atomically."""
    cells = []
    for row in rows:
        days = "".join(
            f'<td style="background:{COLOURS[kind]}" title="{row.first.replace(day=n + 1)}: '
            f'{html.escape(LEGEND[kind] if kind else "nothing restores it")}"></td>'
            for n, kind in enumerate(row.days))
        cells.append(f"<tr><th>{row.first:%Y-%m}</th>{days}</tr>")
    keys = "".join(f'<span style="background:{COLOURS[k]}">&nbsp;&nbsp;&nbsp;</span> '
                   f"{html.escape(t)} &nbsp; " for k, t in LEGEND.items())
    page = ("<!doctype html><meta charset=utf-8><title>cya timeline</title>"
            "<style>td{width:12px;height:12px;padding:0}th{font:12px monospace;"
            "text-align:right;padding-right:6px}</style>"
            f"<h1>Restorable points</h1><p>{keys}</p><table>{''.join(cells)}</table>")
    atomic_write(path, page.encode(), mode=0o644)
