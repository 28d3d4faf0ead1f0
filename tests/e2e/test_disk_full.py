"""A full disk: one clear line, exit 1, and the tree exactly as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import pytest

from tests.helpers import CYA, Workspace


def _namespace_prefix() -> list[str]:
    """Run in a private mount namespace, so the small file system vanishes with the test."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed for the disk-full test")
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private"]
    return ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]


def test_disk_full_changes_nothing(tmp_path):
    ws = Workspace(tmp_path)
    mount = tmp_path / "small-fs"
    mount.mkdir()
    tree = mount / "tree"
    (ws.source / "small.txt").write_text("small\n")
    script = textwrap.dedent(rf"""
        set -u
        mount -t tmpfs -o size=6m tmpfs {mount}
        {CYA} init --source {ws.source} --tree {tree} >/dev/null 2>&1 || exit 90
        # duplicity wants room for ~2.4 volumes of temp space first (200 MB volumes)
        {CYA} --now 2012-12-04T12:00 backup 2> {tmp_path}/precheck && exit 91
        sed -i 's/^duplicity_options = \[\]/duplicity_options = ["--volsize", "1"]/' \
            {ws.config}
        {CYA} --now 2012-12-04T12:00 backup >/dev/null || exit 92
        state() {{ find {tree} -path {tree}/.cya -prune -o -printf '%p %i %s %T@\n' | sort; }}
        state > {tmp_path}/before
        head -c 12M /dev/urandom > {ws.source}/big.bin
        {CYA} --now 2012-12-05T12:00 backup 2> {tmp_path}/stderr
        echo $? > {tmp_path}/rc
        state > {tmp_path}/after
        ls -A {tree}/.cya/staging > {tmp_path}/staging
        test -e {tree}/.cya/journal.json && echo journal > {tmp_path}/journal
        rm {ws.source}/big.bin
        {CYA} --now 2012-12-05T12:00 backup > {tmp_path}/retry 2>&1
        echo $? >> {tmp_path}/retry
        true
    """)
    result = subprocess.run([*_namespace_prefix(), "bash", "-c", script], env=ws.env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    precheck = (tmp_path / "precheck").read_text()
    assert precheck.startswith("cya: error: disk full: not enough free space"), precheck
    assert len(precheck.splitlines()) == 1
    # past duplicity's own check, the disk fills while it writes
    assert (tmp_path / "rc").read_text().strip() == "1"
    stderr = (tmp_path / "stderr").read_text()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cya: error: disk full"), stderr
    assert "Traceback" not in stderr
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    assert (tmp_path / "staging").read_text() == ""
    assert not (tmp_path / "journal").exists()
    # once there is room again, the same backup goes through
    assert (tmp_path / "retry").read_text().splitlines()[-1] == "0"
