"""What metadata recording leaves out is what duplicity leaves out: the config's
exclude globs, compared with duplicity's own glob matching on generated patterns."""

import pytest
from duplicity.globmatch import GlobbingError, select_fn_from_glob
from hypothesis import assume, example, given
from hypothesis import strategies as st

from cya.core.metadata import GlobExclusion

# generated patterns such as "[[]" make re (duplicity's and ours alike) warn of nested sets
pytestmark = pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")


class DuplicityPath:
    """The two things duplicity's glob test asks of a path."""

    def __init__(self, name: str, is_dir: bool):
        self.uc_name = name
        self._is_dir = is_dir

    def isdir(self) -> bool:
        return self._is_dir


def duplicity_accepts(pattern: str) -> bool:
    """Whether duplicity takes the pattern as an --exclude when backing up from / (it
    fails the run otherwise: see Select.glob_get_sf)."""
    if pattern.lower().startswith("ignorecase:"):
        pattern = pattern[len("ignorecase:"):].casefold()
    if not pattern:
        return False
    try:
        return bool(select_fn_from_glob(pattern, 1)(DuplicityPath("/", True)))
    except GlobbingError:
        return False


def duplicity_excludes(patterns: list[str], path: str, is_dir: bool) -> bool:
    """What duplicity does with cya's ``--exclude P`` options for ``path`` (after cya's
    includes of its own files, before those of the sources: so any exclude wins)."""
    for pattern in patterns:
        ignore_case = False
        if pattern.lower().startswith("ignorecase:"):
            pattern, ignore_case = pattern[len("ignorecase:"):].casefold(), True
        if pattern == "**" or select_fn_from_glob(pattern, 0, ignore_case)(
                DuplicityPath(path, is_dir)) == 0:
            return True
    return False


def encoded(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


glob_pieces = st.sampled_from(["a", "b", "A", ".", "*", "**", "?", "[ab]", "[!a]", "[^b]", "[",
                               "]", "é", "\n", "/", "[]a]", "x y"])
patterns = st.builds(
    lambda case, start, middle, slash: case + start + "".join(middle) + slash,
    st.sampled_from(["", "", "", "ignorecase:"]), st.sampled_from(["/", "**/", "**", "/a/"]),
    st.lists(glob_pieces, max_size=6), st.sampled_from(["", "", "/"]))
components = st.sampled_from(["a", "b", "A", "ab", ".a", "é", "a\n", "\udcff", "x y", "[ab]",
                              "*", "B.ISO", "b.iso"])
paths = st.lists(components, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))


@given(st.lists(patterns, min_size=1, max_size=3), paths, st.booleans())
@example(["**/.cache"], "/home/me/.cache\n", True)
@example(["/a/"], "/a", False)
@example(["ignorecase:**/*.ISO"], "/x/b.iso", False)
def test_the_exclusion_is_duplicitys(globs, path, is_dir):
    assume(all(duplicity_accepts(glob) for glob in globs))
    exclusion = GlobExclusion(globs)
    assert exclusion(encoded(path), is_dir) == duplicity_excludes(globs, path, is_dir)


@given(st.lists(patterns, min_size=1, max_size=3), paths, components, st.booleans())
@example(["**/.cache"], "/home", ".cache\n", True)
@example(["**/b"], "/a", "b", False)
def test_below_a_directory_kept_the_fast_test_agrees(globs, parent, name, is_dir):
    assume(all(duplicity_accepts(glob) for glob in globs))
    exclusion = GlobExclusion(globs)
    assume(not exclusion(encoded(parent), True))
    assert exclusion.below(encoded(parent) + b"/", encoded(name), is_dir) == \
        exclusion(encoded(parent + "/" + name), is_dir)


@pytest.mark.parametrize("path, is_dir, excluded", [
    ("/home/me/.cache", True, True),
    ("/home/me/.cache/pip/x", False, True),
    ("/home/me/x.cache", False, False),
    ("/home/me/.cachex", True, False),
    ("/home/me/tmp", True, True),  # "/home/*/tmp/": a directory...
    ("/home/me/tmp", False, False),  # ...not a file
    ("/home/me/tmp/x", False, True),
    ("/home/me/a/tmp", True, False),  # * does not cross /
    ("/srv/a/b/c.ISO", False, True),  # ignorecase:, and ** crosses /
    ("/srv/a/b/c.iso.part", False, False),
    ("/opt/big", False, True),
    ("/opt/bigger", False, False),
])
def test_the_config_example_globs(path, is_dir, excluded):
    exclusion = GlobExclusion(["**/.cache", "/home/*/tmp/", "ignorecase:/srv/**.iso",
                               "/opt/big"])
    assert exclusion(encoded(path), is_dir) is excluded
    assert exclusion(encoded(path), is_dir) == duplicity_excludes(
        list(exclusion.patterns), path, is_dir)


def test_no_patterns_exclude_nothing():
    assert not GlobExclusion([])
    assert not GlobExclusion([])(b"/home", True)
