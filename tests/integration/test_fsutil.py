"""remove_tree on a real directory whose entries vanish while it is being removed, as a
stopping gpg agent's sockets do from the private gpg home cya removes after it."""

from __future__ import annotations

import os

import pytest

from cya.fsutil import remove_tree


def test_an_entry_that_vanishes_meanwhile_is_taken_as_removed(tmp_path, monkeypatch):
    home = tmp_path / "gnupg"
    (home / "private-keys-v1.d").mkdir(parents=True)
    for name in ("S.gpg-agent", "S.gpg-agent.extra", "S.gpg-agent.browser", "gpg-agent.conf"):
        (home / name).write_text("x")
    (home / "private-keys-v1.d" / "key").write_text("k")
    real_unlink = os.unlink

    def racing_unlink(path, *args, **kwargs):
        # another process (the agent) removed it between rmtree's listing and its unlink
        if str(path).startswith("S.gpg-agent"):
            real_unlink(path, *args, **kwargs)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", racing_unlink)
    remove_tree(home)
    assert not home.exists()


def test_any_other_error_is_raised_and_a_missing_path_is_nothing_to_do(tmp_path,
                                                                         monkeypatch):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("x")

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "unlink", refused)
    with pytest.raises(PermissionError):
        remove_tree(tree)
    monkeypatch.undo()
    assert (tree / "sub" / "file").exists()  # nothing was taken as removed
    remove_tree(tree)
    assert not tree.exists()
    remove_tree(tmp_path / "never-there")  # nothing to remove: nothing happens
