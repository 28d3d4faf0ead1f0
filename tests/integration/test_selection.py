"""cya's duplicity selection passes only the options that can matter, and duplicity's
own selection code (the installed duplicity's Python package, walking a real
directory from ``/``) selects exactly what the full list of options selected:
the sources, the metadata directory, never the tree or the cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from duplicity import log
from duplicity.path import Path as DuplicityPath
from duplicity.selection import Select

from cya.config import Settings
from cya.duplicity import glob_escape, selection


def everything_selection(settings, sources, never, also):
    """The selection cya passed before: every option, ``also`` first."""
    options = []
    for path in also:
        options += ["--include", glob_escape(str(path))]
    for path in never:
        options += ["--exclude", glob_escape(str(path))]
    for pattern in settings.exclude:
        options += ["--exclude", pattern]
    for source in sources:
        options += ["--include", glob_escape(str(source))]
    return options + ["--exclude", "**", "/"]


def selected(options: list[str], below: Path) -> set[str]:
    """The paths under ``below`` duplicity's Select yields for these options."""
    log.setup()
    *pairs, root = options
    select = Select(DuplicityPath(root))
    for kind, pattern in zip(pairs[::2], pairs[1::2], strict=True):
        select.add_selection_func(select.glob_get_sf(pattern, 1 if kind == "--include" else 0))
    select.set_iter()
    prefix = str(below)
    return {p.uc_name for p in select if p.uc_name.startswith(prefix)}


def make(base: Path, *paths: str) -> None:
    for path in paths:
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_text(path)


@pytest.mark.parametrize("layout", ["apart", "tree in source", "cache in source",
                                    "user excludes", "source in tree"])
def test_fewer_options_select_the_same_paths(tmp_path, layout):
    base = tmp_path.resolve()
    make(base, "home/me/a.txt", "home/me/.cache/junk", "home/me/.cache/cya/c",
         "home/me/docs/b.txt", "srv/data/x", "var/tree/.cya/metadata/acl.txt",
         "var/tree/2000/files/f", "home/me/tree/.cya/metadata/acl.txt",
         "home/me/tree/2000/files/f", "other/y", "srv/tree/.cya/metadata/m",
         "srv/tree/me/inside")
    tree = {"apart": "var/tree", "tree in source": "home/me/tree",
            "cache in source": "var/tree", "user excludes": "var/tree",
            "source in tree": "srv/tree"}[layout]
    cache = base / ("home/me/.cache/cya" if layout == "cache in source" else "other/cache")
    sources = ([base / "home/me", base / "srv/data"] if layout != "source in tree"
               else [base / "home/me", base / "srv/tree/me"])
    never = [base / tree, base / tree, cache / "tree-id", cache]
    also = [base / tree / ".cya/metadata"]
    settings = Settings(base / "config.toml", base / tree, tuple(sources),
                        exclude=("**/.cache", "**/*.txt") if layout == "user excludes" else ())
    new = selection(settings, sources, never, also)
    old = everything_selection(settings, sources, never, also)
    assert len(new) < len(old)
    assert selected(new, base) == selected(old, base)
    got = selected(new, base)
    assert str(base / tree / ".cya/metadata") in got
    assert not [p for p in got if p.startswith(str(base / tree / "2000"))]
    assert not [p for p in got if p.startswith(str(cache))]


def test_apart_needs_one_option_per_source_and_the_metadata():
    settings = Settings(Path("/c.toml"), Path("/var/tree"), (Path("/home/me"),))
    options = selection(settings, [Path("/home/me")],
                        [Path("/var/tree"), Path("/root/.cache/cya/x"), Path("/root/.cache/cya")],
                        [Path("/var/tree/.cya/metadata")])
    assert options == ["--include", "/home/me", "--include", "/var/tree/.cya/metadata",
                       "--exclude", "**", "/"]


def test_duplicity_options_that_select_never_bring_the_tree_in_nor_drop_the_metadata(
        tmp_path):
    """Found by trying it: with the config's duplicity_options passed before cya's own
    selection, an ``--include`` of a directory holding the tree made the tree back
    itself up (each backup larger than the last), and a plain ``--exclude '**/.*'``
    dropped cya's metadata (``.cya/metadata``): hard links and exact mtimes were then
    silently lost on restore. A ``--filter-regexp`` there turned cya's own globs into
    regular expressions. Now cya's exclusions and its metadata come first and its own
    patterns are read as globs; the user's options still do what they say."""
    from tests.helpers import Workspace, restored_source, snapshot

    ws = Workspace(tmp_path / "ws")
    ws.init()
    (ws.source / "docs").mkdir()
    (ws.source / "docs" / "a.txt").write_text("kept\n")
    os.link(ws.source / "docs" / "a.txt", ws.source / "docs" / "a-link.txt")
    (ws.source / "docs" / ".hidden").write_text("left out by the user's glob\n")
    (ws.source / "docs" / "scratch.tmp").write_text("left out by the user's regex\n")
    exact = 1_000_000_000_123_456_789
    os.utime(ws.source / "docs" / "a.txt", ns=(exact, exact))
    # a dot file out (a glob), *.tmp out (a regex), everything else under the workspace
    # in, the tree and cache included; left in regex mode for what follows
    options = ["--exclude", "**/.*", "--filter-regexp", "--exclude", r"\.tmp$",
               "--filter-globbing", "--include", str(ws.base), "--filter-regexp"]
    listed = ", ".join(f'"{option}"' for option in options).replace("\\", "\\\\")
    text = ws.config.read_text()
    ws.config.write_text(text.replace("duplicity_options = []",
                                      f"duplicity_options = [{listed}]"))
    ws.backup("2013-05-01T12:00")
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2013-05-01", "--target", str(target))
    assert not (target / ws.tree.relative_to("/")).exists()  # the tree kept out
    assert (target / ws.config.relative_to("/")).exists()  # the user's --include
    docs = restored_source(target, ws.source) / "docs"
    assert sorted(p.name for p in docs.iterdir()) == ["a-link.txt", "a.txt"]
    assert (docs / "a.txt").read_text() == "kept\n"
    # the metadata travelled: the link group and the nanoseconds came back
    assert os.lstat(docs / "a.txt").st_ino == os.lstat(docs / "a-link.txt").st_ino
    assert os.lstat(docs / "a.txt").st_mtime_ns == exact
    assert snapshot(docs)["a.txt"] == snapshot(ws.source / "docs")["a.txt"]
