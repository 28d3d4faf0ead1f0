"""Test helpers: run cya and plain duplicity as real processes, make and hash sources."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
CYA = str(BIN / "cya")
DUPLICITY = str(BIN / "duplicity")


def require_tools() -> None:
    """A missing duplicity fails the run; it is never a silent skip."""
    for tool in (CYA, DUPLICITY):
        assert Path(tool).exists(), f"{tool} is missing: install the project with its test extra"


require_tools()


@dataclass
class Workspace:
    """Everything one test's cya needs, under one temporary directory."""

    base: Path
    env: dict = field(default_factory=dict)
    # a clone's: the source path its backups hold (the original workspace's)
    original_source: Path | None = None

    def __post_init__(self) -> None:
        self.source = self.base / "source"
        self.tree = self.base / "tree"
        self.config = self.base / "config" / "config.toml"
        self.cache = self.base / "cache"
        self.source.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "CYA_CONFIG": str(self.config),
            "XDG_CACHE_HOME": str(self.cache),
            "XDG_CONFIG_HOME": str(self.base / "xdg-config"),
            "XDG_STATE_HOME": str(self.base / "xdg-state"),
            "TZ": "UTC",
        }
        self.env.pop("CYA_CRASH_AT", None)

    @property
    def passphrase_file(self) -> Path:
        return self.config.parent / "passphrase"

    def passphrase(self) -> str:
        return self.passphrase_file.read_text().strip()

    def init(self, *extra: str) -> subprocess.CompletedProcess:
        return self.cya("init", "--source", str(self.source), "--tree", str(self.tree), *extra)

    def cya(self, *args: str, check: bool = True, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([CYA, *args], env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"cya {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def backup(self, when: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.cya("--now", when, "backup", *args, check=check)

    def duplicity(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Plain duplicity, without cya, as a user would run it on one ``files/`` dir."""
        env = {**self.env, "PASSPHRASE": self.passphrase()}
        result = subprocess.run([DUPLICITY, *args, "--archive-dir", str(self.base / "plain-cache")],
                                env=env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"duplicity {args} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def files_dirs(self) -> list[Path]:
        return sorted(p for p in self.tree.rglob("files") if ".cya" not in p.parts)

    def manifests(self, level: str) -> list[str]:
        return sorted(n for n in os.listdir(self.tree / level / "files") if ".manifest" in n)


def snapshot(root: Path) -> dict[str, tuple]:
    """What a restore must reproduce: for every path, its type, mode, and content hash."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            result[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            result[rel] = ("dir", stat.S_IMODE(info.st_mode))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            result[rel] = ("file", stat.S_IMODE(info.st_mode), digest, int(info.st_mtime),
                           info.st_size)
    return result


def tree_state(tree: Path) -> dict[str, tuple]:
    """Every entry of a tree outside .cya with its inode: equal states mean nothing changed."""
    state = {}
    for path in sorted(tree.rglob("*")):
        if ".cya" in path.relative_to(tree).parts:
            continue
        info = path.lstat()
        state[str(path.relative_to(tree))] = (info.st_ino, info.st_size, info.st_mtime_ns)
    return state


def change_source(source: Path, day: int) -> None:
    """Change the source the same way for the same ``day``: edits, additions, deletions,
    and the awkward cases (empty file, symlink, spaces, non-ASCII, mode 0600)."""
    (source / "docs").mkdir(exist_ok=True)
    with open(source / "journal.txt", "a") as journal:
        journal.write(f"day {day}\n" * 50)
    (source / "docs" / f"note {day}.txt").write_text(f"note of day {day}\n" * (day + 1))
    if day >= 2 and (source / "docs" / f"note {day - 2}.txt").exists():
        (source / "docs" / f"note {day - 2}.txt").unlink()
    (source / "empty").touch()
    if not (source / "link").is_symlink():
        (source / "link").symlink_to("journal.txt")
    (source / "ünïcödé naïve.txt").write_text(f"ünïcödé {day % 3}\n")
    secret = source / "private.key"
    secret.write_bytes(hashlib.sha256(str(day).encode()).digest() * 100)
    secret.chmod(0o600)
    big = source / "data.bin"
    block = hashlib.sha256(f"block {day}".encode()).digest() * 2048
    with open(big, "r+b" if big.exists() else "wb") as handle:
        handle.seek((day % 8) * len(block))
        handle.write(block)
    # mtimes at one-second resolution, so a restore can be compared exactly
    for path in source.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (1_000_000_000 + day * 86400, 1_000_000_000 + day * 86400))


def with_backups(base: Path, days: Sequence[str], *backup_args: str) -> tuple[Workspace, dict]:
    """A fresh workspace with a backup at noon on each day (the source changed before
    each, by its index); return it and the source's snapshot at each day."""
    ws = Workspace(base)
    ws.init()
    states = {}
    for number, day in enumerate(days):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00", *backup_args)
        states[day] = snapshot(ws.source)
    return ws, states


def restored_source(restore_root: Path, source: Path) -> Path:
    """Backups hold absolute paths: the source lies at its own path inside a restore."""
    return restore_root / source.relative_to("/")



def clone(ws: Workspace, base: Path) -> Workspace:
    """A copy of a workspace at ``base`` (hardlinks kept), its config pointed at the copy;
    ``original_source`` says what source path the copied backups hold."""
    subprocess.run(["cp", "-a", str(ws.base), str(base)], check=True)
    copy = Workspace(base, original_source=ws.original_source or ws.source)
    text = copy.config.read_text().replace(str(ws.base), str(base))
    copy.config.write_text(text)
    copy.config.chmod(0o600)
    return copy


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """A user mistake: the given exit code, one line on stderr naming it, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cya: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def sh_program(directory: Path, name: str, body: str) -> Path:
    """An executable ``sh`` script ``directory/name`` running ``body``: a stand-in for a
    program, found first when ``directory`` leads PATH."""
    directory.mkdir(exist_ok=True)
    program = directory / name
    program.write_text("#!/bin/sh\n" + body)
    program.chmod(0o755)
    return program


def failing_duplicity(tmp_path: Path) -> tuple[dict, Path]:
    """An environment where starting duplicity leaves a mark (the returned path) and
    fails."""
    marker = tmp_path / "duplicity-was-run"
    script = sh_program(tmp_path / "fake-bin", "duplicity", f"touch {marker}\nexit 1\n")
    return {"CYA_DUPLICITY": str(script),
            "PATH": f"{script.parent}:{os.environ['PATH']}"}, marker


def live_processes() -> dict[int, list[bytes]]:
    """{pid: argv} of every process that is not a zombie (``/proc/PID/cmdline`` split at
    its NULs, so the last item is empty; a kernel thread's argv is ``[b""]``)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            found[int(entry.name)] = argv
    return found


def children(pid: int) -> list[int]:
    """The pids of a running process's children."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def duplicity_children(pid: int, within: float = 30.0, poll: float = 0.01) -> list[int]:
    """Wait until cya (``pid``) runs duplicity and return the pids of that child (not of
    the gpgconf that starts gpg's agent first); [] if it did not within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = []
        for child in children(pid):
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(Path(os.fsdecode(arg)).name == "duplicity" for arg in argv[:2]):
                found.append(child)
        if found:
            return found
        time.sleep(poll)
    return []


def as_from_a_terminal() -> None:
    """``preexec_fn`` of a child a test will signal: SIGINT and SIGHUP at their defaults,
    as a command typed at a terminal gets them, whatever this test run inherited (a
    suite started with ``&`` from a script has SIGINT ignored, and cya rightly keeps a
    signal it was started with ignored ignored)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
