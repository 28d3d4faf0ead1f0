"""requirements.txt, what README's first command installs with --no-deps, holds every
package cya needs at run time: each dependency in pyproject.toml, pinned to a version it
allows, and everything those need in turn, except duplicity's cloud backends.
requirements-test.txt, which the second command adds, does the same for the "test"
extra."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# duplicity's core imports no third-party module but fasteners; every other requirement
# of its wheel is the client of one backend (s3 via boto3 is cya's own dependency)
DUPLICITY_CORE = {"fasteners"}


def pinned(*files: str) -> dict[str, str]:
    pins = {}
    for line in "\n".join((ROOT / f).read_text() for f in files or ("requirements.txt",)
                          ).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            found = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", line)
            assert found, f"{files}: not a name==version pin: {line!r}"
            pins[canonicalize_name(found.group(1))] = found.group(2)
    return pins


def run_time_requirements(name: str, extras: set[str] = frozenset()) -> list[Requirement]:
    """What the installed ``name`` requires outside any extra but ``extras``, on this
    platform."""
    needed = []
    for text in metadata.requires(name) or ():
        requirement = Requirement(text)
        if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra})
                                             for extra in ("", *extras)):
            needed.append(requirement)
    return needed


def test_every_project_dependency_is_pinned_to_a_version_it_allows():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = pinned()
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is missing from requirements.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.txt pins {name}=={pins[name]}, pyproject.toml asks {text}"


def test_requirements_are_closed_under_what_they_need():
    pins = pinned()
    for name in pins:
        for requirement in run_time_requirements(name):
            needed = canonicalize_name(requirement.name)
            if name == "duplicity" and needed not in DUPLICITY_CORE:
                continue
            assert needed in pins, f"{name} needs {requirement}, not in requirements.txt"


def test_the_test_extra_is_pinned_and_closed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = pinned("requirements.txt", "requirements-test.txt")
    assert not set(pinned("requirements-test.txt")) & set(pinned()), \
        "requirements-test.txt repeats a pin of requirements.txt"
    wanted = {}
    for text in project["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is missing from requirements-test.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements-test.txt pins {name}=={pins[name]}, pyproject.toml asks {text}"
        wanted[name] = set(requirement.extras)
    for name in pinned("requirements-test.txt"):
        for requirement in run_time_requirements(name, wanted.get(name, set())):
            needed = canonicalize_name(requirement.name)
            assert needed in pins, f"{name} needs {requirement}, not in requirements-test.txt"
