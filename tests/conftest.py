"""Shared fixtures: a workspace with a source, a config dir and a tree, driven through
the installed ``cya`` entry point (a real process, real duplicity)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import Workspace

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
