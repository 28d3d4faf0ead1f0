"""The other encryption modes: a gpg public key, and none (with a warning)."""

from __future__ import annotations

import os
import subprocess

from tests.helpers import DUPLICITY, Workspace, change_source, restored_source, snapshot

WEEK = "2000/2010/2012/2012-12/2012-12-02"
NEW_WEEK = "2000/2010/2012/2012-12/2012-12-09"


def test_gpg_key_mode_encrypts_to_the_key_and_restores(tmp_path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                    "cya test <cya@example.invalid>", "default", "default", "never"],
                   env=env, check=True, capture_output=True)
    ws = Workspace(tmp_path / "ws")
    ws.env["GNUPGHOME"] = str(home)
    ws.init("--gpg-key", "cya@example.invalid")
    assert 'mode = "gpg-key"' in ws.config.read_text()
    assert not ws.passphrase_file.exists()
    change_source(ws.source, 0)
    ws.backup("2012-12-04T12:00")
    change_source(ws.source, 1)
    ws.backup("2012-12-05T12:00")
    change_source(ws.source, 2)
    ws.backup("2012-12-09T12:00")  # a new week: duplicity decrypts the month chain
    files = ws.tree / NEW_WEEK / "files"
    assert all(name.endswith(".gpg") for name in os.listdir(files))
    restored = tmp_path / "restored"
    done = subprocess.run([DUPLICITY, "restore", "--archive-dir", str(tmp_path / "c"),
                           f"file://{files}", str(restored)], env={**ws.env, "PASSPHRASE": ""},
                          capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(restored_source(restored, ws.source)) == snapshot(ws.source)


def test_no_encryption_warns_and_writes_plain_duplicity_files(tmp_path):
    ws = Workspace(tmp_path)
    result = ws.init("--no-encryption")
    assert "will not be encrypted" in result.stderr
    change_source(ws.source, 0)
    ws.backup("2012-12-04T12:00")
    names = os.listdir(ws.tree / WEEK / "files")
    assert any(name.endswith(".difftar.gz") for name in names)
    assert not any(name.endswith(".gpg") for name in names)
