"""Shared fixtures: a workspace with a source, a config dir and a tree, driven through
the installed ``cya`` entry point (a real process, real duplicity)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import Workspace, live_processes

# Properties are checked by their examples, not their speed: a loaded 2-core machine (CI,
# or tests running beside each other) must not turn slow generation into a failure.
settings.register_profile("cya", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cya")


@pytest.fixture
def ws(tmp_path) -> Workspace:
    """A fresh workspace after ``cya init`` (passphrase encryption, generated passphrase)."""
    workspace = Workspace(tmp_path)
    workspace.init()
    return workspace


def _agent_homes() -> dict[int, str]:
    """{pid: --homedir} of every live gpg-agent that names its home."""
    return {pid: os.fsdecode(argv[argv.index(b"--homedir") + 1])
            for pid, argv in live_processes().items()
            if argv[0].endswith(b"gpg-agent") and b"--homedir" in argv}


@pytest.fixture(scope="session", autouse=True)
def own_gpg_home_and_tools(tmp_path_factory) -> Iterator[None]:
    """The suite never touches the real ~/.gnupg and leaves no gpg-agent behind: plain
    duplicity and gpg in tests get a gpg home of the session's own, and every agent
    started under it or under the tests' temporary directories is stopped at the end.
    System tools in /usr/sbin and /sbin (mkfs.ext4, sshd) are found whatever PATH the
    suite was started with."""
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(path + [d for d in ("/usr/sbin", "/sbin")
                                                 if d not in path])
    home = Path(tempfile.mkdtemp(prefix="cya-test-gnupg-"))
    home.chmod(0o700)
    os.environ["GNUPGHOME"] = str(home)
    try:
        yield
    finally:
        tops = (str(home), str(tmp_path_factory.getbasetemp()))
        for agent_home in set(_agent_homes().values()):
            if agent_home.startswith(tops):
                subprocess.run(["gpgconf", "--homedir", agent_home, "--kill", "all"],
                               capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
