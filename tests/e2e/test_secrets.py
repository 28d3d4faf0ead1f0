"""Issue 13, items 9 and 10: no secret outlives a run, and files are as private as README
says.

9. After ``cya backup`` (and a restore) in passphrase mode no process on the machine holds
   the passphrase in its environment (every readable ``/proc/*/environ`` is scanned), no
   gpg-agent the test started is left running, and the real ``~/.gnupg`` is untouched.
10. ``$XDG_CACHE_HOME/cya`` is 0700 after a backup and every duplicity file in the tree is
   0600 (``-vv`` masking of AWS credentials is in tests/s3/test_verify_reads.py).
"""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from tests.helpers import Workspace, change_source, restored_source, snapshot

# What gpg rewrites whenever any process uses a home, and its transient lock files:
# neither says that our run used the real ~/.gnupg.
_VOLATILE = ("random_seed", "S.", ".#lk", ".lock")


def _processes() -> list[Path]:
    return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def holders_of(secret: bytes) -> dict[int, str]:
    """pid -> command line of every process whose environment holds ``secret``."""
    return {int(entry.name): _read(entry / "cmdline").replace(b"\0", b" ").decode(errors="replace")
            for entry in _processes() if secret in _read(entry / "environ")}


def agents_of(marks: list[bytes]) -> dict[int, str]:
    """pid -> command line of every gpg-agent whose command line or environment names one
    of ``marks`` (so: started, through cya, by this test)."""
    found = {}
    for entry in _processes():
        if _read(entry / "comm").strip() != b"gpg-agent":
            continue
        cmdline = _read(entry / "cmdline")
        environ = _read(entry / "environ")
        if any(mark in cmdline or mark in environ for mark in marks):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def gnupg_state(home: Path) -> tuple | None:
    """What a run that used ``home`` as its gpg home would change there."""
    if not home.exists():
        return None
    entries = {}
    for path in sorted(home.rglob("*")):
        name = str(path.relative_to(home))
        if any(part in path.name for part in _VOLATILE):
            continue
        info = path.lstat()
        entries[name] = (info.st_ino, info.st_size, info.st_mtime_ns)
    return tuple(sorted(entries.items()))


@pytest.fixture
def own_gnupg(tmp_path):
    """A gpg home of the test's own; afterwards every agent the test started is stopped
    (after the test has looked for them)."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    marks = [str(tmp_path).encode()]
    yield home, marks
    for pid in agents_of(marks):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_no_process_holds_the_passphrase_after_the_run(tmp_path, own_gnupg):
    gnupg, marks = own_gnupg
    real = Path.home() / ".gnupg"
    real_before = gnupg_state(real)
    ws = Workspace(tmp_path / "ws")
    ws.env["GNUPGHOME"] = str(gnupg)
    ws.init()
    secret = ws.passphrase().encode()
    assert len(secret) >= 20
    states = {}
    for number, day in enumerate(["2012-12-04", "2012-12-05"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
        states[day] = snapshot(ws.source)
        assert holders_of(secret) == {}, f"the passphrase outlived the backup of {day}"
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2012-12-04", "--target", str(target))
    assert snapshot(restored_source(target, ws.source)) == states["2012-12-04"]
    assert holders_of(secret) == {}, "the passphrase outlived the restore"
    assert agents_of(marks) == {}, "a gpg-agent started by the run is still running"
    assert gnupg_state(real) == real_before, f"the run used the real {real}"


def test_the_cache_and_the_duplicity_files_are_private(ws):
    for number, day in enumerate(["2012-12-04", "2012-12-05", "2012-12-11"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
    cache = ws.cache / "cya"
    assert oct(stat.S_IMODE(cache.stat().st_mode)) == oct(0o700)
    files = [p for p in ws.tree.rglob("duplicity-*") if ".cya" not in p.parts]
    assert len(files) > 10
    modes = {str(p.relative_to(ws.tree)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert {path: mode for path, mode in modes.items() if mode != oct(0o600)} == {}
