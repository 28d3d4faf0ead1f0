"""The bucket's records (cya/archive/records.py): what ``as_json`` writes parses back to the same
record, and damaged or crafted input is refused with a RecordError naming the record."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cya.archive.records import (
    FORMAT,
    BackupPoint,
    BagManifest,
    Member,
    RecordError,
    Stored,
    YearPoint,
)
from cya.core.names import format_time
from cya.core.timescale import Level, leaf_for
from tests.unit.trees import names_of_set, times

few = settings(max_examples=25)
sha256 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
sizes = st.integers(0, 2**40)
days = st.dates(min_value=date(1971, 1, 1), max_value=date(2098, 12, 31))
levels = st.builds(lambda day, depth: leaf_for(day).lineage()[depth - 1], days, st.integers(1, 5))
duplicity_names = st.builds(
    lambda start, full, which: names_of_set(start, start + timedelta(days=365), full, 2)[which],
    times, st.booleans(), st.integers(0, 3))


def member_of(level: Level, name: str) -> str:
    return f"{level.relpath}/files/{name}"


members_paths = st.builds(member_of, levels, duplicity_names)
stored = st.builds(Stored, duplicity_names, sha256, sizes, st.text(min_size=1, max_size=30),
                   sizes, members_paths)


@st.composite
def bag_manifests(draw):
    size = draw(st.integers(0, 2**40))
    members = []
    for _ in range(draw(st.integers(0, 5))):
        offset = draw(st.integers(0, size))
        members.append(Member(draw(members_paths), draw(sha256), offset,
                              draw(st.integers(0, size - offset)),
                              tuple(draw(st.lists(members_paths, max_size=2)))))
    return BagManifest(draw(st.text(min_size=1, max_size=40)), str(draw(days).year),
                       draw(sha256), size, draw(st.integers(1, 10_000)), draw(st.text(max_size=60)),
                       draw(st.sampled_from(["DEEP_ARCHIVE", "STANDARD", "GLACIER"])),
                       draw(st.text(max_size=30)), tuple(members))


backup_points = st.builds(
    BackupPoint, times.map(format_time), levels.map(lambda level: level.relpath),
    st.lists(stored, max_size=4).map(tuple), st.one_of(st.none(), st.text(max_size=40)),
    st.text(max_size=30))


@st.composite
def year_points(draw):
    year = leaf_for(draw(days)).lineage()[2]
    inside = [level for level in leaf_for(date(int(year.name), 6, 15)).lineage()[2:]]
    files = {}
    for _ in range(draw(st.integers(0, 4))):
        files[member_of(draw(st.sampled_from(inside)), draw(duplicity_names))] = draw(stored)
    return YearPoint(year.relpath, files, draw(st.text(max_size=30)))


def travelled(record) -> object:
    """A record's JSON as it comes back from the bucket."""
    return json.loads(json.dumps(record.as_json()))


@few
@given(bag_manifests())
def test_a_bag_manifest_round_trips(manifest):
    assert BagManifest.parse(travelled(manifest), "manifests/x.json") == manifest
    assert travelled(manifest)["format"] == FORMAT


@few
@given(backup_points)
def test_a_backup_point_round_trips(point):
    assert BackupPoint.parse(travelled(point), "backups/x.json") == point


@few
@given(year_points())
def test_a_year_point_round_trips(point):
    assert YearPoint.parse(travelled(point), "years/x.json") == point


def test_format_1_is_still_read():
    point = YearPoint("2000/2010/2012", {})
    old = {**point.as_json(), "format": 1}
    assert YearPoint.parse(old, "years/2012.json") == point


# --- refusals -------------------------------------------------------------------------------

NAME = "duplicity-full.20121202T120000Z.vol1.difftar.gpg"
WEEK = "2000/2010/2012/2012-12/2012-12-02"
DIGEST = "ab" * 32
GOOD_STORED = {"name": NAME, "sha256": DIGEST, "size": 10, "bag": "bags/2012/1.tar",
               "offset": 512, "member": f"{WEEK}/files/{NAME}"}
GOOD_MEMBER = {"path": f"{WEEK}/files/{NAME}", "sha256": DIGEST, "offset": 512, "size": 10,
               "links": [f"2000/2010/2012/files/{NAME}"]}
GOOD = {
    "manifest": {"format": 2, "bag": "bags/2012/1.tar", "year": "2012", "digest": DIGEST,
                 "size": 1024, "parts": 1, "checksum": "x", "storage_class": "DEEP_ARCHIVE",
                 "uploaded_at": "2013-01-01T00:00:00Z", "members": [GOOD_MEMBER]},
    "backup": {"format": 2, "time": "20121202T120000Z", "level": WEEK, "chain": [GOOD_STORED],
               "index": "indexes/20121202T120000Z.gpg", "archived_at": "2013-01-01"},
    "year": {"format": 2, "year": "2000/2010/2012", "archived_at": "2013-01-01",
             "files": {f"{WEEK}/files/{NAME}": GOOD_STORED}},
}
PARSE = {"manifest": BagManifest.parse, "backup": BackupPoint.parse, "year": YearPoint.parse}


def test_the_good_records_parse():
    for kind, data in GOOD.items():
        PARSE[kind](copy.deepcopy(data), f"the {kind} record")


def damaged(kind: str, change) -> dict:
    data = copy.deepcopy(GOOD[kind])
    change(data)
    return data


def setter(*keys_and_value):
    *keys, value = keys_and_value

    def change(data):
        for key in keys[:-1]:
            data = data[key]
        if value is DELETE:
            del data[keys[-1]]
        else:
            data[keys[-1]] = value
    return change


DELETE = object()
FILES = f"{WEEK}/files/{NAME}"

REFUSED = {
    # not a record of cya's at all
    "no format": ("backup", setter("format", DELETE), None),
    "a future format": ("manifest", setter("format", 3), None),
    "format as text": ("year", setter("format", "2"), None),
    # level paths
    "an absolute level": ("backup", setter("level", "/" + WEEK), None),
    "a level with ..": ("backup", setter("level", "2000/2010/2012/2012-12/.."), None),
    "a level through ..": ("backup", setter("level", "2000/2010/../2010/2012"), None),
    "a level of a wrong decade": ("backup", setter("level", "2000/2020/2012"), None),
    "a month of another year": ("backup", setter("level", "2000/2010/2012/2013-01"), None),
    "an empty level": ("backup", setter("level", ""), None),
    "a level with a trailing /": ("backup", setter("level", "2000/2010/"), None),
    "a level that is a number": ("backup", setter("level", 2012), None),
    "a year record of a decade": ("year", setter("year", "2000/2010"), None),
    "an absolute year": ("year", setter("year", "/2000/2010/2012"), None),
    # member paths
    "an absolute member": ("manifest", setter("members", 0, "path", "/" + FILES), None),
    "a member escaping its level": ("manifest", setter("members", 0, "path",
                                                        f"{WEEK}/files/../../../../etc/passwd"),
                                    None),
    "a member in no files dir": ("manifest", setter("members", 0, "path", f"{WEEK}/{NAME}"),
                                 None),
    "a member under files twice": ("manifest", setter("members", 0, "path",
                                                       f"{WEEK}/files/x/files/{NAME}"), None),
    "a link outside a level": ("manifest", setter("members", 0, "links", ["/etc/files/" + NAME]),
                               None),
    "links not a list": ("manifest", setter("members", 0, "links", f"{WEEK}/files/{NAME}"), None),
    "a chain member outside a level": ("backup", setter("chain", 0, "member", f"../files/{NAME}"),
                                       None),
    "a file of the next year": ("year", lambda d: d["files"].update(
        {f"2000/2010/2013/files/{NAME}": GOOD_STORED}), "outside the year"),
    "a file of the decade": ("year", lambda d: d["files"].update(
        {f"2000/2010/files/{NAME}": GOOD_STORED}), "outside the year"),
    "a file of a crafted path": ("year", lambda d: d["files"].update(
        {f"2000/2010/2012/files/../../../{NAME}": GOOD_STORED}), None),
    # duplicity names
    "a name that is not duplicity's": ("backup", setter("chain", 0, "name", "passwd"), None),
    "a name with a path": ("backup", setter("chain", 0, "name", f"../{NAME}"), None),
    "a member name that is not duplicity's": ("manifest", setter("members", 0, "path",
                                                                  f"{WEEK}/files/notes.txt"),
                                              None),
    "a member that is a .part": ("manifest", setter("members", 0, "path", f"{FILES}.part"), None),
    "a backup time that is not a stamp": ("backup", setter("time", "2012-12-02T12:00"), None),
    "a backup time that is a number": ("backup", setter("time", 20121202), None),
    # digests
    "an upper-case digest": ("manifest", setter("members", 0, "sha256", DIGEST.upper()), None),
    "a short digest": ("backup", setter("chain", 0, "sha256", DIGEST[:-1]), None),
    "a digest that is not hex": ("year", setter("files", FILES, "sha256", "g" * 64), None),
    "a digest that is a number": ("backup", setter("chain", 0, "sha256", 12), None),
    "a SHA-1": ("manifest", setter("members", 0, "sha256", "a" * 40), None),
    # sizes and offsets
    "a member past the bag's end": ("manifest", setter("size", 521), "past the bag"),
    "a member starting past the end": ("manifest", setter("members", 0, "offset", 2048),
                                       "past the bag"),
    "a negative member offset": ("manifest", setter("members", 0, "offset", -1), "negative"),
    "a negative member size": ("manifest", setter("members", 0, "size", -10), "negative"),
    # wrong types
    "a size as text": ("manifest", setter("size", "1024"), None),
    "a size that is a boolean": ("manifest", setter("size", True), None),
    "an offset that is a float": ("manifest", setter("members", 0, "offset", 512.0), None),
    "parts missing": ("manifest", setter("parts", DELETE), None),
    "members not a list": ("manifest", setter("members", {"0": GOOD_MEMBER}), None),
    "a member not an object": ("manifest", setter("members", [f"{WEEK}/files/{NAME}"]), None),
    "chain not a list": ("backup", setter("chain", GOOD_STORED), None),
    "a chain entry not an object": ("backup", setter("chain", [NAME]), None),
    "a stored size as text": ("backup", setter("chain", 0, "size", "10"), None),
    "a stored bag that is a number": ("backup", setter("chain", 0, "bag", 1), None),
    "files not an object": ("year", setter("files", [GOOD_STORED]), None),
    "a file entry not an object": ("year", setter("files", FILES, NAME), None),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_damaged_or_crafted_records_are_refused_naming_the_record(case):
    kind, change, words = REFUSED[case]
    where = f"records/{kind}/{case.replace(' ', '-')}.json"
    data = damaged(kind, change)
    with pytest.raises(RecordError) as raised:
        PARSE[kind](data, where)
    assert where in raised.value.message
    assert raised.value.hint  # says what to do, or that it was not used
    if words:
        assert words in raised.value.message


@pytest.mark.parametrize("kind", sorted(PARSE))
@pytest.mark.parametrize("data", [None, [], "text", 2, {"format": 2}])
def test_what_is_not_a_record_is_refused(kind, data):
    with pytest.raises(RecordError) as raised:
        PARSE[kind](data, "system/odd.json")
    assert "system/odd.json" in raised.value.message


def test_a_negative_offset_or_size_of_a_stored_file_is_refused():
    for key in ("offset", "size"):
        for kind, path in (("backup", ("chain", 0)), ("year", ("files", FILES))):
            data = damaged(kind, setter(*path, key, -1))
            with pytest.raises(RecordError):
                PARSE[kind](data, f"{kind} with a negative {key}")


def test_a_partial_name_of_a_stored_file_is_refused():
    data = damaged("backup", setter("chain", 0, "name", NAME + ".part"))
    with pytest.raises(RecordError):
        BackupPoint.parse(data, "backups/20121202T120000Z.json")


def test_a_format_that_is_not_an_integer_is_refused():
    for value in (True, 1.0, 2.0):
        data = damaged("year", setter("format", value))
        with pytest.raises(RecordError):
            YearPoint.parse(data, "years/2012.json")


def test_a_year_point_takes_every_level_inside_its_year():
    year = leaf_for(date(2012, 6, 15)).lineage()[2]
    data = copy.deepcopy(GOOD["year"])
    for level in (year, *leaf_for(date(2012, 12, 2)).lineage()[3:]):
        data["files"][f"{level.relpath}/files/{NAME}"] = GOOD_STORED
    assert len(YearPoint.parse(data, "years/2012.json").files) == 3
