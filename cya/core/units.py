"""Sizes as people read them: ``721.3 MB``, never ``721340396 bytes``."""

from __future__ import annotations


def size(count: float) -> str:
    """A byte count in decimal units (B, kB, MB, GB, TB), one decimal above bytes."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"  # pragma: no cover - the loop returns at TB


def rate(count: float, seconds: float) -> str:
    """A transfer rate: ``12.3 MB/s``."""
    return size(count / seconds if seconds > 0 else 0) + "/s"
