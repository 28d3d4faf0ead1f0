"""Reading the tree for people: what is restorable, and what each backup holds.

Everything here reads; nothing writes to the tree. File lists come from the
catalog's per-backup index; for backups made before the index existed, from
``duplicity list-current-files`` (which decrypts, so it is the slow path).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import platformdirs

from cya import duplicity, execute
from cya.catalog import Catalog
from cya.config import Settings, read_passphrase
from cya.core import fileindex
from cya.core.chains import Restorable
from cya.core.names import format_time
from cya.tree import Tree


def files_of(tree: Tree, catalog: Catalog, settings: Settings, backup: Restorable,
             keep: Callable[[str], bool]) -> tuple[dict[str, fileindex.Entry], bool]:
    """The files ``backup`` holds that ``keep`` accepts, and whether the index said so
    (False: listed by duplicity, without sizes)."""
    chain = catalog.index_chain(format_time(backup.time))
    if chain is not None:
        return fileindex.apply((_filtered(delta, keep) for delta in chain), keep), True
    listed = list_with_duplicity(tree, settings, backup)
    return {path: fileindex.Entry(path, kind, None, int(mtime.timestamp()) if mtime else None)
            for path, kind, mtime in listed if keep(path)}, False


def _filtered(delta: bytes, keep: Callable[[str], bool]) -> list[fileindex.Change]:
    return [c for c in fileindex.decode(delta) if keep(c.entry.path)]


def list_with_duplicity(tree: Tree, settings: Settings, backup: Restorable):
    passphrase = read_passphrase(settings)
    with private_tempdir() as work:
        log_file = work / "duplicity.log"
        argv = duplicity.reading_argv("list-current-files", settings=settings,
                                      source=tree.files_dir(backup.level), time=backup.time,
                                      work=work, log_file=log_file)
        done = execute.run(argv, env=duplicity.environment(passphrase), secrets=[passphrase or ""])
        records = duplicity.parse_log(log_file.read_text(errors="replace")) \
            if log_file.exists() else []
        if done.returncode != 0:
            raise duplicity.failure(done.returncode, records, done.tail, settings)
        return duplicity.listed_files(records)


@contextmanager
def private_tempdir() -> Iterator[Path]:
    """A 0700 directory under the user cache dir (duplicity's decrypted metadata goes
    there), removed afterwards."""
    base = Path(platformdirs.user_cache_dir("cya"))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=base, prefix="work-") as work:
        yield Path(work)


def show_gap(asked: datetime, got: datetime) -> str:
    """How far a restored backup is from the asked date, in words."""
    seconds = (asked - got).total_seconds()
    if seconds < 60:
        return "the same time"
    if seconds < 3600:
        return f"{int(seconds // 60)} minutes earlier"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} hours earlier"
    return f"{int(seconds // 86400)} days earlier"

