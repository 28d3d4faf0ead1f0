"""Remote sources through a real sshd on 127.0.0.1 and real sshfs mounts: files read
byte-exactly, nothing written, always unmounted (after an exception, after a kill -9 and
the next run), a dead host named while the others mount, and a plain duplicity backup
of a mount restored byte-exactly."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import cya
from cya import config, sshfs
from cya.core.remote import local_name, parse_remote, remote_name
from cya.errors import ConfigError
from tests.helpers import DUPLICITY
from tests.sshd import Sshd, free_port, start_sshd

ROOT = Path(cya.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Sshd]:
    daemon = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def base(tmp_path) -> Iterator[Path]:
    """A mount base of the test's own; whatever a test leaves mounted is unmounted."""
    path = tmp_path / "state" / "cya" / "mnt"
    yield path
    sshfs.clean_stale(path)
    leftover = [p for p in sshfs.mount_points() if p.startswith(str(tmp_path))]
    assert leftover == [], f"still mounted: {leftover}"


@pytest.fixture
def remote(tmp_path) -> Path:
    """A directory 'on the remote host' with files worth comparing."""
    root = tmp_path / "remote dir"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "name with spaces, and a comma.txt").write_text("odd name\n")
    (root / "sub" / "random.bin").write_bytes(os.urandom(3 * 2**20 + 17))
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    (root / "link").symlink_to("sub/random.bin")
    return root


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root`` (symlinks as their target text)."""
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found[relative] = "-> " + os.readlink(path)
            else:
                found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def mount(server: Sshd, sources: list[str], base: Path, options: list[str] | None = None):
    return sshfs.mounted([parse_remote(s) for s in sources],
                         server.ssh_options if options is None else options,
                         base=base, ssh_config="/dev/null")


def mount_options(point: Path) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            if fields[4] == str(point):
                return fields[5].split(",")
    return []


def test_a_remote_dir_is_mounted_read_only_and_read_byte_exactly(server, base, remote):
    source = server.source(remote)
    with mount(server, [source], base) as mounts:
        assert mounts.failed == ()
        (point,) = mounts.paths
        assert sshfs.is_mounted(point)
        assert "ro" in mount_options(point)
        assert point.parent == base.resolve()
        assert stat.S_IMODE(base.stat().st_mode) == 0o700
        assert digests(point) == digests(remote)
        assert (point / "link").is_symlink() and os.readlink(point / "link") == "sub/random.bin"
        for attempt in (lambda: (point / "new").write_text("x"),
                        lambda: (point / "hello.txt").write_text("changed"),
                        lambda: (point / "hello.txt").unlink(),
                        lambda: (point / "sub" / "made").mkdir()):
            with pytest.raises(OSError) as refused:
                attempt()
            assert refused.value.errno == errno.EROFS
        assert (remote / "hello.txt").read_text() == "hello\n"
        assert not (remote / "new").exists()
    assert not sshfs.is_mounted(point)
    assert not point.exists()


def test_names_map_between_the_mount_and_the_remote_spelling(server, base, remote):
    source = server.source(remote)
    with mount(server, [source], base) as mounts:
        (point,) = mounts.paths
        assert mounts.mapping == {str(point): source}
        # browsing and restores compute the same mount points from the config alone
        assert sshfs.RemoteNames.of([parse_remote(source)], base).mapping == mounts.mapping
        inside = point / "sub" / "random.bin"
        mapping = mounts.mapping
        assert remote_name(str(inside), mapping) == f"{source}/sub/random.bin"
        assert remote_name(str(inside).lstrip("/"), mapping) == f"{source}/sub/random.bin"
        assert remote_name("/etc/passwd", mapping) == "/etc/passwd"
        assert local_name(f"{source}/sub/random.bin", mapping) == str(inside)
        assert local_name(source, mapping) == str(point)
        assert local_name(f"{server.user}@otherhost:/x", mapping) is None
    with mount(server, [source, source], base) as again:
        assert again.paths == (point,)  # the same path in every run, each source once
        assert again.failed == ()


def test_unmounted_after_an_exception_inside(server, base, remote):
    with pytest.raises(RuntimeError, match="the backup failed"):
        with mount(server, [server.source(remote)], base) as mounts:
            (point,) = mounts.paths
            assert sshfs.is_mounted(point)
            raise RuntimeError("the backup failed")
    assert not sshfs.is_mounted(point)
    assert not point.exists()


HOLDER = """
import sys, time
from pathlib import Path
from cya import sshfs
from cya.core.remote import local_name, parse_remote, remote_name
with sshfs.mounted([parse_remote(sys.argv[1])], sys.argv[3:], base=Path(sys.argv[2]),
                   ssh_config="/dev/null") as mounts:
    print("mounted", *mounts.paths, flush=True)
    time.sleep(600)
"""


def start_holder(server: Sshd, source: str, base: Path) -> tuple[subprocess.Popen, Path]:
    """A separate cya process that mounts ``source`` and then sleeps."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, source, str(base), *server.ssh_options],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = process.stdout.readline().split()
    assert line[:1] == ["mounted"], f"the holder did not mount: {line}"
    return process, Path(line[1])


def sshfs_daemons(point: Path) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[0].endswith(b"sshfs") and os.fsencode(str(point)) in cmdline:
                found.append(int(entry.name))
    return found


def test_a_killed_runs_mount_is_cleaned_by_the_next_run_and_a_live_one_is_not(
        server, base, remote):
    source = server.source(remote)
    holder, point = start_holder(server, source, base)
    try:
        # Alive: its mount is never touched, and the same source cannot be mounted twice.
        assert sshfs.clean_stale(base) == []
        with mount(server, [source, server.source(remote / "sub")], base) as mounts:
            (own,) = mounts.paths
            (failure,) = mounts.failed
            assert f"mounted by another cya run (pid {holder.pid})" in failure.error.message
            # what a local source holding the base must not take in: the other run's mount
            assert point in mounts.foreign() and own not in mounts.foreign()
            assert all(p.suffix == ".lock" for p in mounts.foreign() if p != point)
        assert sshfs.is_mounted(point)
        assert digests(point) == digests(remote)
        old_daemons = sshfs_daemons(point)
        assert old_daemons
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert sshfs.is_mounted(point)  # left behind by the killed run
    with mount(server, [source], base) as mounts:
        assert mounts.failed == () and mounts.paths == (point,)
        assert sum(1 for p in sshfs.mount_points() if p == str(point)) == 1
        assert digests(point) == digests(remote)
    assert not sshfs.is_mounted(point)
    deadline = time.monotonic() + 10
    while any(pid in sshfs_daemons(point) for pid in old_daemons):
        assert time.monotonic() < deadline, "the killed run's sshfs still runs"
        time.sleep(0.1)


def test_clean_stale_alone_unmounts_a_dead_runs_mount(server, base, remote):
    holder, point = start_holder(server, server.source(remote), base)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert sshfs.is_mounted(point)
    assert sshfs.clean_stale(base) == [point]
    assert not sshfs.is_mounted(point) and not point.exists()


def test_a_dead_host_is_named_and_the_other_sources_still_mount(server, base, remote):
    # 127.0.0.2 is this machine too, but nothing listens there: connection refused.
    good, dead = server.source(remote), server.source(remote, host="127.0.0.2")
    started = time.monotonic()
    with mount(server, [dead, good], base) as mounts:
        elapsed = time.monotonic() - started
        assert [m.source.spelling for m in mounts.mounts] == [good]
        assert digests(mounts.paths[0]) == digests(remote)
        (failure,) = mounts.failed
        assert failure.source.spelling == dead
        message = failure.error.one_line()
        assert f"remote source {dead}: host 127.0.0.2 cannot be reached" in message
        assert "Connection refused" in message
        assert failure.error.exit_code == 1
        assert mounts.warnings() == [message]
    assert elapsed < 10
    assert not list(base.glob("*127.0.0.2*[!k]"))  # no mount point left for the dead host


@pytest.fixture
def silent_host() -> Iterator[str]:
    """127.0.0.3 accepting TCP connections and never saying a word (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.3", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield str(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def test_a_host_that_never_answers_fails_within_the_connect_timeout(server, base, remote,
                                                                     silent_host):
    options = [f"Port={silent_host}", "ConnectTimeout=2",
               *[o for o in server.ssh_options if not o.startswith(("Port=", "ConnectTimeout="))]]
    source = server.source(remote, host="127.0.0.3")
    started = time.monotonic()
    with mount(server, [source], base, options) as mounts:
        assert mounts.paths == ()
        (failure,) = mounts.failed
    assert time.monotonic() - started < 8
    assert "host 127.0.0.3 cannot be reached" in failure.error.message


def test_a_refused_key_and_a_missing_path_say_so(server, base, remote, tmp_path):
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    options = [o if not o.startswith("IdentityFile=") else f"IdentityFile={stranger}"
               for o in server.ssh_options]
    with mount(server, [server.source(remote)], base, options) as mounts:
        (failure,) = mounts.failed
    assert "Permission denied" in failure.error.message
    assert "IdentityFile=" in failure.error.hint
    missing = server.source(remote / "not-there")
    with mount(server, [missing], base) as mounts:
        (failure,) = mounts.failed
    assert failure.error.message == (f"remote source {missing}: {remote}/not-there does not "
                                     "exist on 127.0.0.1")


def test_an_option_value_with_spaces_and_commas_reaches_ssh(server, base, remote, tmp_path):
    odd = tmp_path / "key dir, with comma"
    odd.mkdir()
    key = odd / "key"
    key.write_bytes(server.user_key.read_bytes())
    key.chmod(0o600)
    options = [o if not o.startswith("IdentityFile=") else f'IdentityFile="{key}"'
               for o in server.ssh_options]
    with mount(server, [server.source(remote)], base, options) as mounts:
        assert mounts.failed == ()
        assert digests(mounts.paths[0]) == digests(remote)


def test_an_option_sshfs_does_not_pass_on_is_named(server, base, remote):
    with mount(server, [server.source(remote)], base, [*server.ssh_options, "SendEnv=LANG"]) \
            as mounts:
        (failure,) = mounts.failed
    assert "sshfs does not pass the ssh option 'SendEnv=LANG'" in failure.error.message


def test_plain_duplicity_backs_up_a_mount_and_restores_it_byte_exactly(server, base, remote,
                                                                       tmp_path):
    target, restored = tmp_path / "target", tmp_path / "restored"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "TZ": "UTC"}
    common = ["--archive-dir", str(tmp_path / "duplicity-cache"), "--name", "t",
              "--no-encryption", "--tempdir", str(tmp_path)]
    with mount(server, [server.source(remote)], base) as mounts:
        (point,) = mounts.paths
        subprocess.run([DUPLICITY, "full", *common, "--include", str(point), "--exclude", "**",
                        "/", f"file://{target}"], check=True, env=env, capture_output=True)
    subprocess.run([DUPLICITY, "restore", *common, f"file://{target}", str(restored)],
                   check=True, env=env, capture_output=True)
    assert digests(restored / str(point).lstrip("/")) == digests(remote)


# -- config ------------------------------------------------------------------------

def load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return config.load(path)


def test_remote_sources_and_ssh_options_in_the_config(tmp_path):
    settings = load(tmp_path, """
tree = "/var/backups/cya"
sources = ["/home/me", "backup@db1.example.org:/var/lib/postgresql/", "10.0.0.7:/etc"]
ssh_options = ["IdentityFile=/root/.ssh/backup", "Port 2222", "StrictHostKeyChecking=yes"]
encryption = { mode = "none" }
""")
    assert settings.sources == (Path("/home/me"),)
    assert [s.spelling for s in settings.remote_sources] == [
        "backup@db1.example.org:/var/lib/postgresql", "10.0.0.7:/etc"]
    assert settings.remote_sources[1].user == ""
    assert settings.ssh_options == ("IdentityFile=/root/.ssh/backup", "Port 2222",
                                    "StrictHostKeyChecking=yes")


def test_only_remote_sources_is_enough(tmp_path):
    settings = load(tmp_path, 'tree = "/t"\nsources = ["me@h:/srv"]\n'
                              'encryption = { mode = "none" }\n')
    assert settings.sources == () and len(settings.remote_sources) == 1


def test_remote_source_and_ssh_option_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, """
tree = "/t"
sources = ["/ok", "me@host:relative/path", "-oProxyCommand=x@h:/p", "me@host:/a/../b"]
ssh_options = ["IdentityFile=/k", "-p 22", "Port="]
encryption = { mode = "none" }
""")
    message = caught.value.one_line()
    for expected in ("sources[1]: 'me@host:relative/path': the remote path must be absolute",
                     "sources[2]: '-oProxyCommand=x@h:/p': a user or host name cannot begin",
                     "sources[3]: 'me@host:/a/../b': the remote path must not contain '..'",
                     "ssh_options[1]: '-p 22' is not an ssh option like",
                     "ssh_options[2]: 'Port=' is not an ssh option"):
        assert expected in message, expected
    assert "sources[0]" not in message and "ssh_options[0]" not in message


def test_ssh_options_must_be_strings(tmp_path):
    with pytest.raises(ConfigError, match="ssh_options: must be a list of strings"):
        load(tmp_path, 'tree = "/t"\nsources = ["/s"]\nssh_options = "Port=22"\n'
                       'encryption = { mode = "none" }\n')


def test_the_default_mount_base_is_cya_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert sshfs.mount_base() == tmp_path / "state" / "cya" / "mnt"


def test_ssh_is_never_interactive_and_user_options_come_before_defaults():
    source = parse_remote("me@h:/srv")
    argv = sshfs.ssh_argv(source, ["ConnectTimeout=3"], None)
    options = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]
    assert options[:3] == ["ClearAllForwardings=yes", "BatchMode=yes", "ConnectTimeout=3"]
    assert "ConnectTimeout=10" in options  # after the user's, so theirs wins
    assert argv[-3:] == ["--", "me@h", "sftp"]
    mount = sshfs.sshfs_argv(source, Path("/m"), ["IdentityFile=/a,b\\c"], "/dev/null")
    assert "IdentityFile=/a\\,b\\\\c" in mount
    assert mount[:3] == ["sshfs", "-o", "ro"] and mount[-3:] == ["--", "me@h:/srv", "/m"]
    assert free_port() > 0
