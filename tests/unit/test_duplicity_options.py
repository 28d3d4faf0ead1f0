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
                  "--full-if-older-than", "--full-if-n-inc", "--dry-run"]
PASSED_THROUGH = ["--volsize", "50", "--allow-source-mismatch", "--exclude-device-files",
                  "--gpg-options=--compress-algo=zlib", "--no-compression", "--encryption",
                  "--asynchronous-upload", "--exclude", "**/*.tmp", "-v", "--tempdir=/big"]


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
    assert problem.startswith("duplicity_options: --na (duplicity reads it as --name) ")
    [problem] = refused_options(["--full-if=1M"], "none")
    assert "(duplicity reads it as --full-if-n-inc or --full-if-older-than)" in problem
    assert refused_options(["--", "-", "--vol", "10"], "passphrase") == []


def test_no_encryption_is_refused_unless_the_mode_is_none():
    for mode in ["passphrase", "gpg-key"]:
        [problem] = refused_options(["--no-encryption"], mode)
        assert f'stored unencrypted, though encryption.mode is "{mode}"' in problem
    assert refused_options(["--no-encryption"], "none") == []


@pytest.mark.parametrize("option", ["--encrypt-key", "--hidden-encrypt-key",
                                    "--encrypt-sign-key"])
def test_encrypting_to_a_key_is_refused_unless_the_mode_is_gpg_key(option):
    for mode in ["passphrase", "none"]:
        [problem] = refused_options([option, "0xDEADBEEF"], mode)
        assert f'encrypted to a gpg key, not as encryption.mode = "{mode}" says' in problem
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
