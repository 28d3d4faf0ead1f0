from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cya.core.names import (
    backup_sets,
    complete_backup_times,
    manifest_last,
    parse_name,
    parse_time,
)
from tests.unit.trees import names_of_set

# wider than trees.times: names and stamps parse for any year duplicity could write
times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)).map(
    lambda t: t.replace(microsecond=0, tzinfo=UTC))


@given(times, st.integers(0, 10**7), st.booleans(), st.integers(1, 5),
       st.sampled_from(["gpg", "gz"]))
def test_every_name_of_a_set_parses_to_that_set(start, seconds, full, volumes, suffix):
    end = start if full else start + timedelta(seconds=seconds + 1)  # an increment takes time
    names = names_of_set(start, end, full, volumes, suffix)
    for name in names:
        parsed = parse_name(name)
        assert parsed is not None, name
        assert (parsed.full, parsed.start, parsed.end) == (full, start, end)
        assert parsed.encrypted == (suffix == "gpg")
    (only,) = backup_sets(names)
    assert only.complete and only.time == end and only.full == full
    assert only.manifest == names[-1]
    # without its manifest a set is incomplete
    assert not backup_sets(names[:-1])[0].complete
    assert manifest_last(reversed(names))[-1] == names[-1]


def test_real_names_and_refusals():
    parsed = parse_name("duplicity-inc.20121204T120000Z.to.20121205T120000Z.vol12.difftar.gpg")
    assert parsed.volume == 12 and parsed.role == "volume"
    assert parsed.end == datetime(2012, 12, 5, 12, tzinfo=UTC)
    assert parse_name("duplicity-full.20121204T120000Z.manifest.part").partial
    for bad in ("duplicity-full.20121204T120000Z.to.20121205T120000Z.manifest",
                "duplicity-inc.20121204T120000Z.manifest",
                "duplicity-inc.20121205T120000Z.to.20121204T120000Z.manifest",
                "duplicity-full.20121204T120000Z.sigtar.gpg",
                "notes.txt", "duplicity-full.2012.manifest"):
        assert parse_name(bad) is None, bad
    assert parse_time("20121204T120000Z") == datetime(2012, 12, 4, 12, tzinfo=UTC)


def test_sets_sort_by_time_and_partial_files_are_ignored():
    t0 = datetime(2012, 12, 4, 12, tzinfo=UTC)
    t1, t2 = t0 + timedelta(days=1), t0 + timedelta(days=2)
    names = (names_of_set(t1, t2, False, 1, "gpg") + names_of_set(t0, t0, True, 2, "gpg")
             + names_of_set(t0, t1, False, 1, "gpg")[:-1]
             + ["duplicity-inc.20121205T120000Z.to.20121207T120000Z.manifest.part"])
    assert complete_backup_times(names) == [t0, t2]
    assert [s.time for s in backup_sets(names)] == [t0, t1, t2]
