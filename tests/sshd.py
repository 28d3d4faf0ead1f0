"""A real OpenSSH server on 127.0.0.1 for tests, and the ssh options that reach it.

Everything lives in one temporary directory: the host key, a user key, the
authorized_keys and known_hosts files, the sshd_config, its pid file and log. Nothing
reads or writes the real ``~/.ssh``: clients get ``-F /dev/null`` and explicit options.
A missing ``sshd``, ``ssh`` or ``sshfs`` fails the test (Debian: openssh-server, sshfs);
it is never a silent skip.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # sshd started by root insists on it (Debian's unit makes it)


def require_ssh_tools() -> None:
    for tool in (SSHD, "ssh", "ssh-keygen", "sshfs"):
        assert shutil.which(tool), (f"{tool} is missing: install Debian's openssh-server and "
                                    "sshfs (apt-get install openssh-server sshfs)")
    assert os.path.exists("/dev/fuse"), "/dev/fuse is missing: sshfs cannot mount"


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@dataclass
class Sshd:
    directory: Path
    port: int
    user: str
    user_key: Path
    known_hosts: Path
    process: subprocess.Popen | None = None

    @property
    def ssh_options(self) -> list[str]:
        """ssh_options for a cya config: this server's port, key and host key file."""
        return [f"Port={self.port}", f"IdentityFile={self.user_key}", "IdentitiesOnly=yes",
                f"UserKnownHostsFile={self.known_hosts}", "StrictHostKeyChecking=yes",
                "ConnectTimeout=5"]

    def source(self, path: Path, host: str = "127.0.0.1") -> str:
        return f"{self.user}@{host}:{path}"

    def log(self) -> str:
        path = self.directory / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sshd(directory: Path) -> Sshd:
    """Generate keys, write a config with a free port, start ``sshd -D`` and wait until it
    accepts connections."""
    require_ssh_tools()
    directory.mkdir(parents=True, exist_ok=True)
    host_key, user_key = directory / "host_key", directory / "user_key"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cya-test",
                        "-f", str(key)], check=True)
    (directory / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    port = free_port()
    public = host_key.with_suffix(".pub").read_text().split()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    config = directory / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {directory / "authorized_keys"}
StrictModes no
PidFile {directory / "sshd.pid"}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
Subsystem sftp internal-sftp
LogLevel VERBOSE
""")
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(directory / "sshd.log")],
                               stdin=subprocess.DEVNULL)
    server = Sshd(directory, port, getpass.getuser(), user_key, known_hosts, process)
    deadline = time.monotonic() + 15
    while True:
        assert process.poll() is None, f"sshd exited {process.returncode}: {server.log()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"sshd did not listen on {port}: {server.log()}") from None
            time.sleep(0.05)
