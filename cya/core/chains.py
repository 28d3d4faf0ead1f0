"""Which backup restores a date, from which level, and what that costs to read.

Every copy of one backup carries the same chain contents, so a backup can be
restored from any level holding it; the best is the one whose chain up to it
is shortest (fewest sets for duplicity to read), the finest level on a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cya.core.names import BackupSet, format_time, parse_name
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


def chain_to(sets: list[BackupSet], time: datetime,
             complete: dict[datetime, BackupSet] | None = None) -> tuple[BackupSet, ...]:
    """The sets duplicity reads to restore the backup at ``time``, full first: each
    incremental's start is the time of the complete set before it. Empty when the
    backup at ``time`` is not complete or its chain has a gap (a lost set, a damaged
    one): duplicity could not restore it, so it is not restorable. ``complete``: the
    sets by time, when the caller asks for many times of one level."""
    if complete is None:
        complete = {s.time: s for s in sets if s.complete}
    current = complete.get(time)
    chain = []
    while current is not None:
        chain.append(current)
        if current.full:
            return tuple(reversed(chain))
        current = complete.get(current.start)
    return ()


def chain_problem(sets: list[BackupSet]) -> str | None:
    """Why a level's newest chain must not be extended, or None when it may be.

    The newest chain runs from the newest full on; every set in it must be complete
    and follow the one before it. Building on a broken chain would make every later
    backup unrestorable while looking fine."""
    fulls = [i for i, s in enumerate(sets) if s.full]
    if not sets:
        return None
    if not fulls:
        return f"no full backup before {format_time(sets[0].time)}"
    newest = sets[fulls[-1]:]
    previous = None
    for backup in newest:
        if not backup.complete:
            missing = "its manifest" if backup.manifest is None else "some of its files"
            return f"the backup of {format_time(backup.time)} lacks {missing}"
        if previous is not None and backup.start != previous.time:
            return (f"the backup of {format_time(backup.time)} follows "
                    f"{format_time(backup.start)}, which is missing")
        previous = backup
    return None


def restorable(view: TreeView) -> list[Restorable]:
    """Every backup time the tree can restore, each from its cheapest level, oldest first."""
    best: dict[datetime, Restorable] = {}
    for level in view.levels():
        sets = view.backups(level)
        by_time = {s.time: s for s in sets}
        for backup in sets:
            chain = chain_to(sets, backup.time, by_time)
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
