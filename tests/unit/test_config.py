import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cya import config
from cya.errors import ConfigError

GOOD = """
tree = "/var/backups/cya"
sources = ["/home/me", "rel/dir"]
exclude = ["**/.cache"]
week_start = "monday"
[encryption]
mode = "passphrase"
passphrase_file = "~/pass"
[trim]
keep = 3
keep_week = 4
[archive]
bucket = "b"
bag_size = "512MiB"
"""


def write(tmp_path, text, mode=0o600):
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_good_config_becomes_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    settings = config.load(write(tmp_path, GOOD))
    assert str(settings.tree) == "/var/backups/cya"
    assert str(settings.sources[1]) == str(tmp_path / "rel/dir")
    assert str(settings.encryption.passphrase_file) == "/home/me/pass"
    assert settings.week_start.value == "monday"
    assert settings.trim.keep_for("week") == 4 and settings.trim.keep_for("month") == 3
    assert settings.archive.bag_size == 512 * 2**20 and settings.archive.enabled


def test_every_problem_is_named_by_its_key_path(tmp_path):
    text = GOOD.replace('keep = 3', 'keep = 0\ncolour = "red"').replace(
        'week_start = "monday"', 'week_start = "friday"\nsurprise = 1').replace(
        'bag_size = "512MiB"', 'bag_size = "lots"\nauto = "yes"')
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    message = caught.value.one_line()
    for expected in ("surprise: unknown key", "week_start: must be one of sunday, monday",
                     "trim.keep: must be a whole number >= 1", "trim.colour: unknown key",
                     "archive.bag_size", "archive.auto: must be true or false"):
        assert expected in message
    assert caught.value.exit_code == 2
    assert "\n" not in message


def test_broken_toml_and_missing_keys(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "tree = [unclosed"))
    with pytest.raises(ConfigError, match="tree: missing.*sources: missing"):
        config.load(write(tmp_path, "[encryption]\nmode='none'\n"))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_config_readable_by_others_is_refused_with_the_fix(tmp_path, mode):
    path = write(tmp_path, GOOD, mode)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert f"chmod 600 {path}" in caught.value.one_line()


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CYA_CONFIG", raising=False)
    assert str(config.find_config("/x.toml")) == "/x.toml"
    monkeypatch.setenv("CYA_CONFIG", "/from/env.toml")
    assert str(config.find_config(None)) == "/from/env.toml"
    monkeypatch.delenv("CYA_CONFIG")
    user = tmp_path / "xdg" / "cya" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert config.find_config(None) == user
    user.unlink()
    if not config.SYSTEM_CONFIG_PATH.exists():
        with pytest.raises(ConfigError, match="no config file found"):
            config.find_config(None)


@given(st.text())
def test_toml_string_round_trips(text):
    assert tomllib.loads(f"x = {config.toml_string(text)}")["x"] == text


def test_sizes():
    assert config.parse_size("40GB") == 40 * 10**9
    assert config.parse_size("1.5 GiB") == int(1.5 * 2**30)
    assert config.parse_size("100") == 100
    assert config.parse_size("lots") is None


def test_the_example_config_in_contrib_loads(tmp_path):
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "contrib" / "config.example.toml"
    settings = config.load(write(tmp_path, example.read_text()))
    assert [str(s) for s in settings.sources] == ["/home", "/etc"]
