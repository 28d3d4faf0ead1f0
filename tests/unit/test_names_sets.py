"""When duplicity's files make a backup (cya/core/names.py): completeness, ``.part`` files,
the manifest written last, and duplicity's time stamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cya.core.names import (
    backup_sets,
    complete_backup_times,
    format_time,
    manifest_last,
    parse_name,
    parse_time,
)
from tests.unit.trees import SetSpec, linked_histories, names_of, names_of_set, suffixes, times

T0 = datetime(2012, 12, 4, 12, tzinfo=UTC)
few = settings(max_examples=40)


@st.composite
def set_specs(draw):
    start = draw(times)
    full = draw(st.booleans())
    end = start if full else start + timedelta(seconds=draw(st.integers(1, 10**7)))
    return SetSpec(start, end, full, draw(st.integers(1, 5)), draw(suffixes))


@few
@given(set_specs(), st.data())
def test_a_set_is_complete_exactly_with_manifest_signatures_and_volumes_one_to_n(spec, data):
    kept = data.draw(st.sets(st.sampled_from(spec.names), min_size=1), label="kept files")
    (found,) = backup_sets(kept)
    roles = {parse_name(n).role for n in kept}
    volumes = sorted(parse_name(n).volume for n in kept if parse_name(n).volume)
    expected = ({"manifest", "signatures"} <= roles and bool(volumes)
                and volumes == list(range(1, len(volumes) + 1)))
    assert found.complete == expected
    assert (found.time, found.start, found.full) == (spec.end, spec.start, spec.full)
    assert found.files == tuple(sorted(kept))
    assert found.manifest == (spec.manifest if spec.manifest in kept else None)
    assert complete_backup_times(kept) == ([spec.end] if expected else [])


def test_completeness_by_hand():
    names = names_of_set(T0, T0, True, 3)
    volume1, volume2, volume3, signatures, manifest = names
    assert backup_sets(names)[0].complete
    assert not backup_sets([volume1, volume3, signatures, manifest])[0].complete  # a gap
    assert not backup_sets([volume2, volume3, signatures, manifest])[0].complete  # no vol1
    assert not backup_sets([volume1, volume2, volume3, manifest])[0].complete  # no signatures
    assert not backup_sets([signatures, manifest])[0].complete  # no volume at all
    zero = "duplicity-full.20121204T120000Z.vol0.difftar.gpg"
    assert not backup_sets([zero, signatures, manifest])[0].complete


@few
@given(set_specs())
def test_a_lone_manifest_is_not_a_backup(spec):
    (found,) = backup_sets([spec.manifest])
    assert not found.complete and found.manifest == spec.manifest
    assert complete_backup_times([spec.manifest]) == []


@few
@given(linked_histories(), st.data())
def test_part_files_are_ignored(specs, data):
    names = names_of(specs)
    partial = data.draw(st.sets(st.sampled_from(names)), label="also .part")
    with_parts = names + [name + ".part" for name in partial]
    assert backup_sets(with_parts) == backup_sets(names)
    assert all(parse_name(name + ".part").partial for name in partial)
    # a set whose manifest exists only as .part is not complete
    last = specs[-1]
    unfinished = [n for n in names if n != last.manifest] + [last.manifest + ".part"]
    assert complete_backup_times(unfinished) == [s.end for s in specs[:-1]]
    # nor is a set of nothing but .part files a set at all
    assert backup_sets([n + ".part" for n in last.names]) == []


@few
@given(linked_histories(), st.lists(st.sampled_from(
    ["notes.txt", "duplicity-full.2012.manifest", "files", ".cya", "duplicity-full.manifest",
     "duplicity-inc.20121204T120000Z.manifest", "duplicity-full.20121204T120000Z.manifest~"])))
def test_names_that_are_not_duplicitys_are_ignored(specs, others):
    names = names_of(specs)
    assert backup_sets(names + others) == backup_sets(names)
    assert [s.time for s in backup_sets(names)] == [s.end for s in specs]  # oldest first


@few
@given(linked_histories(), st.randoms(use_true_random=False))
def test_manifests_come_last(specs, random):
    names = names_of(specs) + ["notes.txt", specs[0].names[0] + ".part"]
    random.shuffle(names)
    ordered = manifest_last(names)
    assert sorted(ordered) == sorted(names)  # the same names
    roles = [parse_name(n).role if parse_name(n) else None for n in ordered]
    first_manifest = roles.index("manifest")
    assert all(role == "manifest" for role in roles[first_manifest:])
    assert roles.count("manifest") == len(specs)
    assert manifest_last(ordered) == ordered


offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@few
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30)), offsets)
def test_time_stamps_round_trip(moment, zone):
    moment = moment.replace(microsecond=0, tzinfo=zone)
    stamp = format_time(moment)
    assert len(stamp) == 16 and stamp.endswith("Z")
    assert parse_time(stamp) == moment
    assert parse_time(stamp).tzinfo == UTC
    assert format_time(parse_time(stamp)) == stamp
    assert stamp == moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@settings(max_examples=100)
@given(st.text(alphabet="0123456789TZ:-x ", min_size=0, max_size=20))
def test_parse_time_takes_only_stamps(text):
    well_formed = (len(text) == 16 and text[8] == "T" and text[15] == "Z"
                   and (text[:8] + text[9:15]).isdigit())
    try:
        parse_time(text)
    except ValueError:
        return
    assert well_formed, text


@pytest.mark.parametrize("text", ["20121304T120000Z", "20121232T120000Z", "20121204T250000Z",
                                  "20121204T120060Z", "20121204t120000Z", "20121204T120000z",
                                  "2012-12-04T12:00", "20121204T120000", " 20121204T120000Z"])
def test_parse_time_refusals(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_only_ascii_digits_make_a_time_stamp():
    for digits in ("\uff12\uff10\uff11\uff12", "\u0662\u0660\u0661\u0662"):  # fullwidth, Arabic
        stamp = f"{digits}1204T120000Z"
        with pytest.raises(ValueError):
            parse_time(stamp)
        assert parse_name(f"duplicity-full.{stamp}.vol1.difftar.gpg") is None
