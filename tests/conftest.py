"""Shared fixtures: a workspace with a source, a config dir and a tree, driven through
the installed ``cya`` entry point (a real process, real duplicity)."""

from __future__ import annotations

import pytest

from tests.helpers import Workspace


@pytest.fixture
def ws(tmp_path) -> Workspace:
    """A fresh workspace after ``cya init`` (passphrase encryption, generated passphrase)."""
    workspace = Workspace(tmp_path)
    workspace.init()
    return workspace
