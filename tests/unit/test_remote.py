"""Remote source spelling ([user@]host:/path) and the names of its files in a backup."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cya.core.remote import (
    RemoteSource,
    local_name,
    looks_remote,
    mount_name,
    parse_remote,
    remote_name,
)


@pytest.mark.parametrize("text, expected", [
    ("me@host:/srv/data/", RemoteSource("me", "host", "/srv/data")),
    ("host.example.org:/", RemoteSource("", "host.example.org", "/")),
    ("backup@127.0.0.1:/var//lib/./pg", RemoteSource("backup", "127.0.0.1", "/var/lib/pg")),
    ("me@[::1]:/etc", RemoteSource("me", "[::1]", "/etc")),
])
def test_parse(text, expected):
    assert looks_remote(text)
    assert parse_remote(text) == expected


@pytest.mark.parametrize("text", ["/home/me", "./odd:name", "~/x:y", "relative/dir", "../a:b"])
def test_local_paths_are_not_remote(text):
    assert not looks_remote(text)


@pytest.mark.parametrize("text, problem", [
    ("me@host:srv", "must be absolute"),
    ("host:", "must be absolute"),
    ("me@host:/a/../b", "'..'"),
    ("-oProxyCommand=evil@h:/p", "cannot begin with '-'"),
    ("me@-h:/p", "cannot begin with .-."),
    ("me:secret@host:/p", "not a user name"),
    ("a@b@host:/p", "not a remote source"),
    ("me@ho st:/p", "not a remote source"),
])
def test_parse_errors_say_what_is_wrong(text, problem):
    assert looks_remote(text)
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        parse_remote(text)


def test_spelling_and_mount_name():
    source = parse_remote("me@db1:/var/lib/postgresql/")
    assert source.spelling == str(source) == "me@db1:/var/lib/postgresql"
    assert source.login == "me@db1"
    name = mount_name(source)
    assert name.startswith("me@db1_var_lib_postgresql-") and len(name.split("-")[-1]) == 12
    assert name == mount_name(parse_remote("me@db1:/var/lib/postgresql"))
    assert name != mount_name(parse_remote("db1:/var/lib/postgresql"))
    assert "/" not in mount_name(parse_remote("h:/")) and "[" not in mount_name(
        parse_remote("[::1]:/x"))


MAPPING = {"/root/.local/state/cya/mnt/a-1": "me@h:/srv",
           "/root/.local/state/cya/mnt/a-10": "h:/",
           "/root/.local/state/cya/mnt/a-1/nested": "other:/x"}


def test_remote_names():
    assert remote_name("root/.local/state/cya/mnt/a-1/etc/x", MAPPING) == "me@h:/srv/etc/x"
    assert remote_name("/root/.local/state/cya/mnt/a-1", MAPPING) == "me@h:/srv"
    assert remote_name("/root/.local/state/cya/mnt/a-10/etc", MAPPING) == "h:/etc"
    assert remote_name("/root/.local/state/cya/mnt/a-10", MAPPING) == "h:/"
    assert remote_name("/root/.local/state/cya/mnt/a-1/nested/y", MAPPING) == "other:/x/y"
    assert remote_name("home/me/file", MAPPING) == "home/me/file"


def test_local_names():
    assert local_name("me@h:/srv/etc/x", MAPPING) == "/root/.local/state/cya/mnt/a-1/etc/x"
    assert local_name("me@h:/srv", MAPPING) == "/root/.local/state/cya/mnt/a-1"
    assert local_name("h:/", MAPPING) == "/root/.local/state/cya/mnt/a-10"
    assert local_name("h:/etc", MAPPING) == "/root/.local/state/cya/mnt/a-10/etc"
    assert local_name("me@h:/srvx", MAPPING) is None
    assert local_name("/home/me", MAPPING) is None


@given(st.lists(st.text(alphabet="abc xyz.-_", min_size=1, max_size=8)
                .filter(lambda part: part not in (".", "..")), max_size=4))
def test_names_round_trip(parts):
    rest = "".join(f"/{part}" for part in parts)
    for point in MAPPING:
        remote = remote_name(point + rest, MAPPING)
        assert local_name(remote, MAPPING) == point + rest
