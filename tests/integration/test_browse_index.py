"""``cya ls --date D PATH`` shows what the file index keeps of each path — type (a
symlink's target), mode, owner and the marks of what cya's metadata keeps beyond
duplicity — in text and JSON; an index written in the old format (format 1) is read
and converted; the trim takes the index rows of backups that left the tree."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import zlib

from cya.clock import iso
from cya.core import fileindex
from cya.core import metadata as formats
from cya.core.names import parse_time
from tests.helpers import with_backups

ACL = formats.encode_acl((*formats.base_acl(0o640), formats.AclEntry(formats.USER, 65534, 4),
                          formats.AclEntry(formats.MASK, None, 4)))


def make_source(source):
    (source / "dir").mkdir()
    (source / "plain.txt").write_text("plain\n")
    (source / "noted.txt").write_text("noted\n")
    os.setxattr(source / "noted.txt", "user.comment", b"hello")
    (source / "shared.txt").write_text("acl\n")
    os.chmod(source / "shared.txt", 0o640)
    os.setxattr(source / "shared.txt", formats.ACL_ACCESS, ACL)
    (source / "dir" / "one").write_text("linked\n")
    os.link(source / "dir" / "one", source / "dir" / "two")
    with open(source / "holes.img", "wb") as handle:
        handle.truncate(8 << 20)
        handle.write(b"data")
    (source / "link").symlink_to("dir/one")
    os.chmod(source / "dir", 0o2750)


def test_ls_shows_type_mode_owner_target_and_marks(ws):
    make_source(ws.source)
    ws.backup("2012-12-04T12:00")
    text = ws.cya("ls", "--date", "now", str(ws.source)).stdout
    lines = {line.split("  ")[-1]: line for line in text.splitlines()[1:]}
    me = pwd.getpwuid(os.getuid()).pw_name
    src = str(ws.source)
    assert lines[f"{src}/dir/"].startswith(f"drwxr-s--- {me}")
    assert lines[f"{src}/link @ dir/one"].startswith("lrwxrwxrwx")
    assert lines[f"{src}/plain.txt"].startswith("-rw-")
    marks = {name: line.split("  ")[-2] for name, line in lines.items()}
    assert marks[f"{src}/plain.txt"] == "----"
    assert marks[f"{src}/noted.txt"] == "-x--"
    assert marks[f"{src}/shared.txt"] == "a---"
    assert marks[f"{src}/dir/one"] == marks[f"{src}/dir/two"] == "--h-"
    assert marks[f"{src}/holes.img"] == "---s"

    data = json.loads(ws.cya("ls", "--date", "now", str(ws.source), "--json").stdout)
    files = {entry["path"]: entry for entry in data["files"]}
    link = files[f"{src}/link"]
    assert (link["type"], link["target"], link["mode"]) == ("symlink", "dir/one", "lrwxrwxrwx")
    shared = files[f"{src}/shared.txt"]
    assert shared["mode"] == "-rw-r-----" and shared["owner"] == me and shared["marks"] == ["acl"]
    assert files[f"{src}/dir/two"]["marks"] == ["hardlink"]
    assert files[f"{src}/holes.img"]["marks"] == ["sparse"]
    assert files[f"{src}/holes.img"]["size"] == (8 << 20)


def test_an_index_in_the_old_format_is_read_and_converted(ws):
    (ws.source / "a.txt").write_text("a\n")
    (ws.source / "caf\udce9.txt").write_text("b\n")
    ws.backup("2012-12-04T12:00")
    catalog = ws.tree / ".cya" / "catalog.sqlite"
    relative = str(ws.source).lstrip("/")
    old = "\n".join(json.dumps(row) for row in [
        ["A", relative, "dir", None, 100],
        ["A", f"{relative}/a.txt", "file", 2, 100],
        ["A", f"{relative}/caf\udce9.txt", "file", 2, 100]]).encode()
    db = sqlite3.connect(catalog)
    with db:
        db.execute("UPDATE file_index SET delta = ?", (zlib.compress(old),))
        db.execute("PRAGMA user_version = 6")  # as the cya before format 2 left it
    db.close()
    ws.backup("2012-12-05T12:00")  # a writer brings the catalog up to date
    db = sqlite3.connect(catalog)
    deltas = [zlib.decompress(row[0]) for row in db.execute("SELECT delta FROM file_index")]
    db.close()
    assert deltas and all(delta.startswith(fileindex.MAGIC) for delta in deltas)
    listed = json.loads(ws.cya("ls", "--date", "2012-12-04T13:00", str(ws.source),
                               "--json").stdout)
    files = {entry["path"]: entry for entry in listed["files"]}
    assert files[f"{ws.source}/caf\\xe9.txt"]["size"] == 2
    assert files[f"{ws.source}/a.txt"]["mode"] is None  # format 1 did not say
    text = ws.cya("ls", "--date", "2012-12-04T13:00", str(ws.source)).stdout
    assert "?????????? ? ?" in text and "caf\\xe9.txt" in text


def test_the_trim_takes_the_index_of_backups_that_left_the_tree(tmp_path):
    ws, _ = with_backups(tmp_path, ["2012-12-04", "2012-12-05", "2012-12-11", "2012-12-18",
                                    "2012-12-25"])
    assert not (ws.tree / "2000/2010/2012/2012-12/2012-12-02").exists(), "not trimmed"
    db = sqlite3.connect(ws.tree / ".cya" / "catalog.sqlite")
    rows = sorted(row[0] for row in db.execute("SELECT backup FROM file_index"))
    db.close()
    # 12-05 was only in the week of 12-02; the others are in the month chain or a kept week
    assert rows == ["20121204T120000Z", "20121211T120000Z", "20121218T120000Z",
                    "20121225T120000Z"]
    found = json.loads(ws.cya("find", "journal.txt", "--json").stdout)
    assert [f["backup"] for f in found] == [iso(parse_time(row)) for row in rows]
