"""Bad input: one line that says what is wrong and what to do, the contract's exit
code, no traceback, and an untouched tree."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers import (
    CYA,
    Workspace,
    assert_one_line_error,
    change_source,
    clone,
    restored_source,
    snapshot,
    tree_state,
    with_backups,
)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tree holding two backups."""
    ws, _ = with_backups(tmp_path_factory.mktemp("made"), ["2012-12-04", "2012-12-05"])
    return ws


@pytest.fixture
def tree(made, tmp_path):
    return clone(made, tmp_path / "copy")


def test_missing_source(tree):
    shutil.rmtree(tree.source)
    before = tree_state(tree.tree)
    result = tree.backup("2012-12-06T12:00", check=False)
    assert_one_line_error(result, 2, f"source {tree.source} does not exist")
    assert tree_state(tree.tree) == before


def test_broken_toml(tree):
    tree.config.write_text(tree.config.read_text() + "\n[trim\n")
    result = tree.backup("2012-12-06T12:00", check=False)
    assert_one_line_error(result, 2, "is not valid TOML")


def test_unknown_key_and_wrong_type(tree):
    tree.config.write_text(tree.config.read_text().replace(
        "[trim]", "[trim]\nkeep_weeks = 3").replace("auto = true", "auto = 1", 1))
    before = tree_state(tree.tree)
    result = tree.backup("2012-12-06T12:00", check=False)
    assert_one_line_error(result, 2, "trim.keep_weeks: unknown key",
                          "trim.auto: must be true or false")
    assert tree_state(tree.tree) == before


def test_world_readable_passphrase_file(tree):
    tree.passphrase_file.chmod(0o644)
    before = tree_state(tree.tree)
    result = tree.backup("2012-12-06T12:00", check=False)
    assert_one_line_error(result, 2, f"chmod 600 {tree.passphrase_file}")
    assert tree_state(tree.tree) == before


def test_world_readable_config(tree):
    tree.config.chmod(0o644)
    result = tree.backup("2012-12-06T12:00", check=False)
    assert_one_line_error(result, 2, f"chmod 600 {tree.config}")


def test_now_before_the_newest_backup(tree):
    before = tree_state(tree.tree)
    result = tree.backup("2012-12-05T11:00", check=False)
    assert_one_line_error(result, 2, "is not after the newest backup")
    assert tree_state(tree.tree) == before


def test_now_not_a_date(tree):
    result = tree.backup("not-a-date", check=False)
    assert_one_line_error(result, 2, "--now 'not-a-date' is not a date or time")


def test_wrong_passphrase(tree):
    tree.passphrase_file.write_text("not the passphrase\n")
    before = tree_state(tree.tree)
    change_source(tree.source, 3)
    result = tree.backup("2012-12-06T12:00", check=False)
    assert_one_line_error(result, 1, "wrong passphrase")
    assert tree_state(tree.tree) == before
    assert list((tree.tree / ".cya" / "staging").iterdir()) == []


@pytest.mark.parametrize("options, needle", [
    (["--full-if-older-than", "1D"], "--full-if-older-than cannot be passed to a backup: "
                                     "duplicity would make a full that cya records and "
                                     "reports as an incremental"),
    (["--no-encryption"], "--no-encryption cannot be passed to a backup: the backups would "
                          'be stored unencrypted though encryption.mode is "passphrase"'),
    (["--encrypt-key=0xDEADBEEF"], "backups would be encrypted to a gpg key"),
    (["--volsize", "1", "--na", "other"], "--na (a start of --name)"),
    (["--current-time", "0"], "--current-time cannot be passed to a backup"),
    (["-v0"], "-v0 would keep from cya the warnings that name the files duplicity could "
              "not read"),
    (["--exclude-other-filesystems"], "duplicity would leave out every source on another "
                                      "file system than /"),
], ids=["full-if-older-than", "no-encryption", "encrypt-key", "abbreviated name",
        "current-time", "quiet", "other file systems"])
def test_duplicity_options_that_would_betray_the_backup_refuse_it_before_it_starts(
        tree, tmp_path, options, needle):
    """Passed through, these made duplicity store a full that cya reported as an
    incremental, store backups unencrypted under a passphrase config, encrypt them to a
    key the passphrase cannot open, break the cache and the placement after a whole
    run, hide the files it could not read (exit 0 instead of 1), or leave out a source
    on another file system than / (an empty backup, exit 0). Now the backup stops
    first, the tree untouched; restores still read the tree."""
    expected = snapshot(tree.source)
    listed = ", ".join(f'"{option}"' for option in options)
    text = tree.config.read_text()
    tree.config.write_text(text.replace("duplicity_options = []",
                                        f"duplicity_options = [{listed}]"))
    before = tree_state(tree.tree)
    catalog = (tree.tree / ".cya" / "catalog.sqlite").read_bytes()
    change_source(tree.source, 3)
    for dry in ((), ("--dry-run",)):
        result = tree.backup("2012-12-06T12:00", *dry, check=False)
        assert_one_line_error(result, 2, needle,
                              f"; take it out of duplicity_options in {tree.config}")
    assert tree_state(tree.tree) == before
    assert (tree.tree / ".cya" / "catalog.sqlite").read_bytes() == catalog
    validated = tree.cya("config", "validate", check=False)
    assert validated.returncode == 2
    assert any(needle in line for line in validated.stderr.splitlines()
               if line.startswith("cya: problem: duplicity_options: ")), validated.stderr
    target = tmp_path / "restored"
    tree.cya("restore", "--date", "2012-12-05", "--target", str(target))
    assert snapshot(restored_source(target, tree.original_source)) == expected


def test_no_config_at_all(tmp_path):
    ws = Workspace(tmp_path)
    result = ws.cya("backup", check=False)
    assert_one_line_error(result, 2, f"config file {ws.config} does not exist", "cya init")


def test_init_refuses_to_overwrite_and_never_replaces_a_passphrase(tree):
    secret = tree.passphrase()
    result = tree.cya("init", "--source", str(tree.source), "--tree", str(tree.tree),
                      check=False)
    assert_one_line_error(result, 2, "already exists", "--force")
    tree.cya("init", "--source", str(tree.source), "--tree", str(tree.tree), "--force")
    assert tree.passphrase() == secret
    # and the tree is still usable with it
    change_source(tree.source, 4)
    tree.backup("2012-12-06T12:00")


def _without_read_override() -> list[str]:
    """As root, drop the capabilities that let root read any file; others need nothing."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def test_unreadable_file_is_reported_and_the_backup_kept(tree, tmp_path):
    change_source(tree.source, 5)
    locked = tree.source / "locked.txt"
    locked.write_text("cannot read me")
    locked.chmod(0o000)
    expected = snapshot(tree.source)
    del expected["locked.txt"]
    result = subprocess.run([*_without_read_override(), CYA, "--now", "2012-12-06T12:00",
                             "backup"], env=tree.env, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "1 file(s) could not be read" in result.stderr and str(locked) in result.stderr
    # the backup is there, complete, and restores everything else exactly
    week = tree.tree / "2000/2010/2012/2012-12/2012-12-02/files"
    assert len([n for n in os.listdir(week) if ".manifest" in n]) == 3
    tree.duplicity("restore", f"file://{week}", str(tmp_path / "restored"))
    assert snapshot(restored_source(tmp_path / "restored", tree.source)) == expected
