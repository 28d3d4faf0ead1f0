"""The one way into a tree: ``open_tree(settings, write=...)``.

Every command that touches a tree opens it here (restic's ``openWithExclusiveLock``):

1. the tree must exist with cya's state (else one line naming ``cya init`` or, for a
   tree whose state is gone, ``cya init --adopt``);
2. the lock: exclusive for writers, shared for readers that must not see a level
   vanish (restore), none for readers of names (ls, find, status, dry runs), so they
   work while a backup runs;
3. one catalog: read-only for readers (a tree on a read-only mount, or a copy of one,
   is read without writing a byte), migrated for writers; missing or damaged is one
   line naming ``cya init --adopt``;
4. for writers, what a crash interrupted is finished or undone (cya/interrupted.py);
5. one scan of the tree; a command that changes the tree updates that view with what
   it did (``changed``) instead of scanning again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cya.catalog import Catalog
from cya.config import Settings
from cya.core.treeview import TreeView
from cya.errors import CyaError, from_os_error
from cya.lock import TreeLock
from cya.tree import Tree


@dataclass
class OpenTree:
    settings: Settings
    tree: Tree
    catalog: Catalog
    lock: TreeLock
    write: bool
    finished: str | None = None  # what was done about a backup a crash interrupted
    _view: TreeView | None = field(default=None, repr=False)

    @property
    def view(self) -> TreeView:
        """The tree as scanned once (after any interrupted run was dealt with)."""
        if self._view is None:
            self._view = self.tree.scan()
        return self._view

    def changed(self, view: TreeView) -> None:
        """This run changed the tree; ``view`` is the tree as it is now."""
        self._view = view

    @property
    def identity(self) -> str:
        """What names this tree's duplicity cache (a copy of the tree gets its own)."""
        return self.tree.identity(self.catalog.tree_id)


def unopened(settings: Settings) -> Tree:
    """The configured tree without opening it: only for ``cya init`` (which makes or
    adopts it, so there is no state to open yet) and ``cya config validate`` (which only
    looks whether it is there). Every other command opens it with ``open_tree``."""
    return Tree(settings.tree)


@contextmanager
def open_tree(settings: Settings, *, write: bool, locked: bool = True,
              despite_full_disk: bool = False,
              record: bool = False) -> Iterator[OpenTree]:
    """Open the configured tree for reading or (``write``) writing; see the module doc.
    Raise TreeError (or CatalogError) naming the command that fixes it, Busy when
    another run holds the lock. ``locked=False`` (readers of names only: status, ls,
    find, timeline, dry runs) takes no lock, so they work while a backup runs.
    ``record``: a reader that records in the catalog (the thaws a restore from the
    archive asked for) without excluding a backup from the tree.
    ``despite_full_disk``: when finishing an interrupted
    backup fails for want of space, go on (trim, which frees space, keeps what that
    backup needs) instead of failing."""
    tree = unopened(settings)
    tree.require()
    lock = TreeLock(tree.lock_path, shared=not write)
    if locked or write:
        try:
            lock.__enter__()
        except OSError as error:
            raise from_os_error(error, "lock the tree") from None
    try:
        catalog = Catalog.open(tree.catalog_path, write=write or record)
        try:
            opened = OpenTree(settings, tree, catalog, lock, write)
            if write:
                from cya.interrupted import finish_or_undo  # duplicity: writers only

                try:
                    opened.finished = finish_or_undo(tree, catalog, opened.identity)
                except CyaError as error:
                    if not (despite_full_disk and error.message.startswith("disk full")):
                        raise
                    opened.finished = f"an interrupted backup is left for later: {error.message}"
                except OSError as error:
                    full = from_os_error(error, "finish an interrupted backup")
                    if not (despite_full_disk and full.message.startswith("disk full")):
                        raise full from None
                    opened.finished = f"an interrupted backup is left for later: {full.message}"
            yield opened
        finally:
            catalog.close()
    finally:
        lock.__exit__()
