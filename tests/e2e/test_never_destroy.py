"""Issue 12, items 1 and 2: cya never destroys what the user had.

1. ``restore`` refuses (exit 2, one line, nothing touched) a target that is or holds
   the tree, the cache, the config, the passphrase file or a source, that is ``/`` or
   ``$HOME``, or that lies inside the tree or the cache, with or without ``--force``;
   ``--force`` into a non-empty directory merges file by file and keeps every entry
   it replaces in a sibling ``T.cya-replaced-*`` directory.
2. ``init`` never changes the mode of a directory it did not create, and refuses a
   config or passphrase file in a directory others can write.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from tests.helpers import (
    Workspace,
    assert_one_line_error,
    change_source,
    clone,
    restored_source,
    snapshot,
)

DAYS = ["2012-12-04", "2012-12-05"]


def layout(base: Path) -> Workspace:
    """A workspace whose source lies next to other data (``data/src``), whose passphrase
    has a directory of its own (``keys/``) and with a home directory (``home/``)."""
    ws = Workspace(base)
    ws.source = base / "data" / "src"
    ws.source.mkdir(parents=True, exist_ok=True)
    (base / "data" / "notes.txt").write_text("not backed up, but mine\n")
    ws.keys = base / "keys"
    ws.home = base / "home"
    (ws.home / "work" / "sub").mkdir(parents=True, exist_ok=True)
    (ws.home / ".profile").write_text("my profile\n")
    return ws


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two backups of ``data/src``; the source as it was at each."""
    ws = layout(tmp_path_factory.mktemp("made"))
    ws.init("--passphrase-file", str(ws.keys / "passphrase"))
    states = {}
    for number, day in enumerate(DAYS):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
        states[day] = snapshot(ws.source)
    return ws, states


@pytest.fixture
def copy(made, tmp_path):
    """A copy of the made workspace (its config pointing at the copy); the backups still
    hold the original source's paths."""
    original, states = made
    ws = clone(original, tmp_path / "copy")
    ws.source = ws.base / "data" / "src"
    ws.keys = ws.base / "keys"
    ws.home = ws.base / "home"
    ws.states = states
    assert str(ws.keys / "passphrase") in ws.config.read_text()
    return ws


def state_of(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (cya's own state included): files by inode and SHA-256,
    directories by inode, symlinks by target. The lock file and SQLite's transient journal
    are left out: taking a lock is not touching the user's data."""
    state: dict[str, tuple] = {}
    if not root.exists():
        return state
    for path in sorted(root.rglob("*")):
        if path.name == "lock" or path.name.endswith(("-journal", "-wal", "-shm")):
            continue
        info = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            state[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            state[rel] = ("dir", info.st_ino)
        else:
            state[rel] = ("file", info.st_ino, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def everything(ws: Workspace) -> dict[str, tuple]:
    """The whole workspace: tree (with its catalog), cache, config, passphrase, source,
    home."""
    return state_of(ws.base)


# (name, the target given the workspace, restore only one file?)
OVERLAPPING = [
    ("the tree", lambda ws: ws.tree, False),
    ("the tree's parent", lambda ws: ws.base, False),
    ("the config's directory", lambda ws: ws.config.parent, False),
    ("the passphrase file's directory", lambda ws: ws.keys, False),
    ("the tree's state directory", lambda ws: ws.tree / ".cya", False),
    ("a level inside the tree", lambda ws: ws.tree / "2000", False),
    ("a new directory inside the tree", lambda ws: ws.tree / "restored", False),
    ("cya's cache directory", lambda ws: ws.cache / "cya", False),
    ("a new directory inside the cache", lambda ws: ws.cache / "cya" / "restored", False),
    ("a source", lambda ws: ws.source, False),
    ("a directory holding a source", lambda ws: ws.source.parent, False),
    ("$HOME", lambda ws: ws.home, True),
    ("/", lambda ws: Path("/"), True),
]


@pytest.mark.parametrize("name, target_of, one_file", OVERLAPPING,
                         ids=[case[0] for case in OVERLAPPING])
def test_restore_refuses_a_target_that_overlaps_what_cya_or_the_user_keeps(
        copy, name, target_of, one_file):
    target = target_of(copy)
    env = {"HOME": str(copy.home)}
    path = ["--path", str(copy.original_source / "journal.txt")] if one_file else []
    before = everything(copy)
    for force in ([], ["--force"]):
        result = copy.cya("restore", "--date", "now", "--target", str(target), *path, *force,
                          check=False, env=env)
        assert_one_line_error(result, 2, str(target))
        assert everything(copy) == before, (name, force)
    assert not list(Path("/").glob("..cya-restore-*")) and not Path("/journal.txt").exists()


def test_force_onto_the_tree_or_config_is_refused_and_every_backup_still_restores(
        copy, tmp_path):
    for target in (copy.tree, copy.base, copy.config.parent, copy.tree / ".cya"):
        result = copy.cya("restore", "--date", "now", "--target", str(target), "--force",
                          check=False)
        assert_one_line_error(result, 2, str(target))
    assert copy.config.is_file() and (copy.keys / "passphrase").is_file()
    for day in DAYS:
        out = tmp_path / f"restored-{day}"
        copy.cya("restore", "--date", day, "--target", str(out))
        assert snapshot(restored_source(out, copy.original_source)) == copy.states[day]
    # a new directory inside a source stays allowed
    inside = copy.source / "restored-here"
    copy.cya("restore", "--date", "now", "--target", str(inside))
    assert snapshot(restored_source(inside, copy.original_source)) == copy.states[DAYS[-1]]


@pytest.mark.parametrize("clash", [True, False], ids=["same name there", "no clash"])
def test_force_merges_file_by_file_and_keeps_what_it_replaces(copy, clash):
    work = copy.home / "work"
    (work / "keep.txt").write_text("mine\n")
    (work / "sub" / "other.txt").write_text("also mine\n")
    if clash:
        (work / "journal.txt").write_text("my own journal, not the backup's\n")
    kept = {k: v for k, v in state_of(work).items() if k != "journal.txt"}
    result = copy.cya("restore", "--date", DAYS[-1], "--path",
                      str(copy.original_source / "journal.txt"), "--target", str(work),
                      "--force", env={"HOME": str(copy.home)})
    now = state_of(work)
    assert set(kept) <= set(now), f"deleted from the target: {sorted(set(kept) - set(now))}"
    assert {k: now[k] for k in kept} == kept, "an entry of the target changed"
    restored = hashlib.sha256((work / "journal.txt").read_bytes()).hexdigest()
    assert restored == copy.states[DAYS[-1]]["journal.txt"][2]
    aside = sorted(copy.home.glob("work.cya-replaced-*"))
    if clash:
        assert len(aside) == 1 and aside[0].is_dir(), list(copy.home.iterdir())
        assert (aside[0] / "journal.txt").read_text() == "my own journal, not the backup's\n"
        assert aside[0].name in result.stdout
    assert (copy.home / ".profile").read_text() == "my profile\n"


# -- item 2: init and the modes of directories it did not create ----------------------

def _init(ws: Workspace, config: Path, *extra: str):
    source = ws.base / "src"
    source.mkdir(exist_ok=True)
    return ws.cya("--config", str(config), "init", "--source", str(source),
                  "--tree", str(ws.base / "tree"), *extra, check=False)


def _existing_dir(path: Path, mode: int) -> Path:
    path.mkdir(parents=True)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("which", ["config", "passphrase"])
def test_init_leaves_the_mode_of_an_existing_directory_alone(tmp_path, which):
    ws = Workspace(tmp_path)
    shared = _existing_dir(tmp_path / "etc", 0o755)
    if which == "config":
        config, extra = shared / "cya.toml", ()
    else:
        config, extra = tmp_path / "private" / "cya.toml", (
            "--passphrase-file", str(shared / "cya.pass"))
    result = _init(ws, config, *extra)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    secret = shared / "cya.pass" if which == "passphrase" else shared / "passphrase"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


@pytest.mark.parametrize("which, mode", [
    ("config", 0o777), ("config", 0o775),
    ("passphrase", 0o777), ("passphrase", 0o775), ("existing passphrase", 0o777),
])
def test_init_refuses_a_secret_in_a_directory_others_can_write(tmp_path, which, mode):
    ws = Workspace(tmp_path)
    shared = _existing_dir(tmp_path / "shared", mode)
    if which == "config":
        config, extra = shared / "cya.toml", ()
    else:
        config, extra = tmp_path / "private" / "cya.toml", (
            "--passphrase-file", str(shared / "cya.pass"))
        if which == "existing passphrase":
            (shared / "cya.pass").write_text("a passphrase of mine\n")
            os.chmod(shared / "cya.pass", 0o600)
    before = state_of(shared)
    result = _init(ws, config, *extra)
    assert_one_line_error(result, 2, str(shared))
    assert stat.S_IMODE(shared.stat().st_mode) == mode
    assert state_of(shared) == before
    assert not config.exists() and not (tmp_path / "tree").exists()
