"""Which backup restores a date, from which level, and what that costs to read.

Every copy of one backup carries the same chain contents, so a backup can be
restored from any level holding it; the best is the one whose chain up to it
is shortest (fewest sets for duplicity to read), the finest level on a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cya.core.names import BackupSet, parse_name
from cya.core.timescale import Level
from cya.core.treeview import TreeView


@dataclass(frozen=True)
class Restorable:
    time: datetime
    full: bool
    level: Level
    chain: tuple[BackupSet, ...]  # the full up to and including this backup

    @property
    def chain_length(self) -> int:
        return len(self.chain)

    @property
    def volumes(self) -> int:
        return sum(1 for s in self.chain for n in s.files
                   if (p := parse_name(n)) is not None and p.role == "volume")


def chain_to(sets: list[BackupSet], time: datetime) -> tuple[BackupSet, ...]:
    """The sets duplicity reads to restore ``time``: the last full at or before it, on."""
    upto = [s for s in sets if s.time <= time]
    start = max((i for i, s in enumerate(upto) if s.full), default=None)
    return tuple(upto[start:]) if start is not None else ()


def restorable(view: TreeView) -> list[Restorable]:
    """Every backup time the tree can restore, each from its cheapest level, oldest first."""
    best: dict[datetime, Restorable] = {}
    for level in view.levels():
        sets = view.backups(level)
        for backup in sets:
            chain = chain_to(sets, backup.time)
            if not chain:
                continue
            candidate = Restorable(backup.time, backup.full, level, chain)
            current = best.get(backup.time)
            if current is None or (candidate.chain_length, -len(level.names)) < (
                    current.chain_length, -len(current.level.names)):
                best[backup.time] = candidate
    return [best[t] for t in sorted(best)]


def choose(view: TreeView, when: datetime) -> Restorable | None:
    """The newest backup at or before ``when``, from its cheapest level, or None."""
    candidates = [r for r in restorable(view) if r.time <= when]
    return candidates[-1] if candidates else None


def bytes_to_read(view: TreeView, choice: Restorable) -> int:
    return sum(view.size(choice.level, s.files) for s in choice.chain)
