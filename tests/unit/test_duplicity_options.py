"""What ``duplicity_options`` a backup refuses (duplicity.refused_options): what cya sets
for every backup itself, and what would make duplicity encrypt otherwise than
``encryption.mode`` says; the rest passes through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cya.duplicity import refused_options

MODES = ["passphrase", "gpg-key", "none"]
ALWAYS_REFUSED = ["--archive-dir", "--name", "--file-prefix", "--file-prefix-archive",
                  "--file-prefix-manifest", "--file-prefix-signature", "--current-time",
                  "--full-if-older-than", "--full-if-n-inc", "--dry-run", "--help",
                  "--version", "--exclude-other-filesystems", "--copy-links"]
PASSED_THROUGH = ["--volsize", "50", "--allow-source-mismatch", "--exclude-device-files",
                  "--gpg-options=--compress-algo=zlib", "--no-compression", "-vinfo",
                  "--asynchronous-upload", "--exclude", "**/*.tmp", "--include", "/etc",
                  "--filter-regexp", "--exclude", "x$", "--tempdir=/big", "--verbosity",
                  "warning", "--verb=9", "-v", "n"]


@pytest.mark.parametrize("mode", MODES)
def test_options_cya_does_not_set_pass_through_in_every_mode(mode):
    assert refused_options(PASSED_THROUGH, mode) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("option", ALWAYS_REFUSED)
def test_what_cya_sets_itself_is_refused_alone_or_with_its_value(option, mode):
    for given_as in ([option, "x"], [f"{option}=x"]):
        [problem] = refused_options([*PASSED_THROUGH, *given_as], mode)
        assert problem.startswith(f"duplicity_options: {option} cannot be passed to a backup: ")


def test_an_abbreviation_duplicity_would_expand_is_refused_and_says_what_it_means():
    [problem] = refused_options(["--na", "mine"], "passphrase")
    assert problem.startswith("duplicity_options: --na (a start of --name) ")
    [problem] = refused_options(["--full-if=1M"], "none")
    assert "(a start of --full-if-n-inc or --full-if-older-than)" in problem
    [problem] = refused_options(["--exclude-oth"], "none")
    assert "(a start of --exclude-other-filesystems)" in problem
    # an option of duplicity's own that starts a refused one means itself
    assert refused_options(["--exclude", "x", "--vol", "10"], "passphrase") == []
    assert refused_options(["--", "-", "-x"], "passphrase") == []


def test_no_encryption_is_refused_unless_the_mode_is_none_and_encryption_if_it_is():
    for mode in ["passphrase", "gpg-key"]:
        [problem] = refused_options(["--no-encryption"], mode)
        assert f'stored unencrypted though encryption.mode is "{mode}"' in problem
        assert refused_options(["--encryption"], mode) == []
    assert refused_options(["--no-encryption"], "none") == []
    [problem] = refused_options(["--encryption"], "none")
    assert 'encrypted though encryption.mode is "none"' in problem


@pytest.mark.parametrize("spelled, shown", [
    (["-v0"], "-v0"), (["-v", "1"], "-v 1"), (["-verror"], "-verror"), (["-vE"], "-vE"),
    (["--verbosity", "e"], "--verbosity e"), (["--verb=0"], "--verb=0"),
    (["--verbos", "error"], "--verbos error")])
def test_a_verbosity_below_warning_is_refused_it_hides_unreadable_files(spelled, shown):
    [problem] = refused_options(spelled, "none")
    assert problem == (f"duplicity_options: {shown} would keep from cya the warnings that "
                       "name the files duplicity could not read (use warning or more)")


def test_help_and_version_are_refused_short_or_long():
    for spelled in (["-h"], ["-V"], ["--help"], ["--vers"]):
        [problem] = refused_options(spelled, "passphrase")
        assert problem.endswith("duplicity would print it instead of backing up")


@pytest.mark.parametrize("option", ["--encrypt-key", "--hidden-encrypt-key",
                                    "--encrypt-sign-key"])
def test_encrypting_to_a_key_is_refused_unless_the_mode_is_gpg_key(option):
    for mode in ["passphrase", "none"]:
        [problem] = refused_options([option, "0xDEADBEEF"], mode)
        assert f'encrypted to a gpg key, not as encryption.mode = "{mode}" says' in problem
        assert 'set mode = "gpg-key" and gpg_key instead' in problem
    # another recipient of a gpg-key tree is fine
    assert refused_options([option, "0xDEADBEEF"], "gpg-key") == []


def test_every_refused_option_is_named_once_in_order():
    problems = refused_options(["--name", "a", "--volsize", "9", "--no-encryption",
                                "--dry-run"], "passphrase")
    assert [p.split()[1] for p in problems] == ["--name", "--no-encryption", "--dry-run"]


@given(st.lists(st.text(max_size=12), max_size=8), st.sampled_from(MODES))
def test_only_long_options_are_ever_refused_and_each_problem_names_one(options, mode):
    problems = refused_options(options, mode)
    named = [p.split()[1] for p in problems]
    assert len(problems) <= len(options)
    for name in named:
        assert name.startswith("--")
        assert any(option.split("=", 1)[0] == name for option in options)


def _duplicity_parser():
    """duplicity's own argument parser, every option added as duplicity adds them."""
    from duplicity import cli_main
    from duplicity.cli_data import OptionAliases, OptionKwargs, all_options
    from duplicity.cli_util import opt2var

    parser = cli_main.new_parser()
    for option in sorted(all_options):
        name = opt2var(option)
        parser.add_argument(option, *OptionAliases.__dict__.get(name, []),
                            **OptionKwargs[name])
    return parser


def _read_as(parser, token: str) -> str | None:
    """The option duplicity's parser reads ``token`` as (None: none or ambiguous)."""
    import contextlib
    import io

    from duplicity import argparse311

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            found = parser._parse_optional(token)
    except (argparse311.ArgumentError, SystemExit):
        return None  # ambiguous: duplicity refuses it itself
    if not found or found[0] is None:
        return None
    return max(found[0].option_strings, key=len)


@pytest.mark.parametrize("mode", MODES)
def test_every_start_of_every_duplicity_option_is_refused_as_duplicity_reads_it(mode):
    """Against the installed duplicity's own parser: a start duplicity reads as a refused
    option is refused, one it reads as another option passes (an ambiguous one, which
    duplicity refuses itself, may go either way). Fails when a new duplicity adds an
    option that starts a refused one and ``_WHOLE`` does not know it."""
    parser = _duplicity_parser()
    options = sorted({s for action in parser._actions for s in action.option_strings
                      if s.startswith("--")})
    refused_whole = {o for o in options if refused_options([o, "x"], mode)
                     and o != "--verbosity"}
    assert {"--name", "--full-if-older-than", "--copy-links"} <= refused_whole
    for option in options:
        for end in range(3, len(option) + 1):
            start = option[:end]
            read_as = _read_as(parser, start)
            if read_as is None or read_as == "--verbosity":
                continue
            refused = bool(refused_options([start, "x"], mode))
            assert refused == (read_as in refused_whole), (start, read_as)
