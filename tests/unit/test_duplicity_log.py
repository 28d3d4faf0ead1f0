"""Reading duplicity (cya/duplicity.py's pure functions): its log on real output, escaped names,
statistics, unreadable and listed files, and what a failure means.

The logs in data/ are real duplicity 3.2.1 output (data/README.rst says how they were made);
no duplicity runs here."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cya.config import Encryption, Settings
from cya.core.fileindex import shown
from cya.duplicity import (
    LogRecord,
    Outcome,
    failure,
    listed_files,
    parse_log,
    statistics,
    unescape,
    unreadable_files,
)
from cya.errors import EXIT_FAILED, CommandFailed

DATA = Path(__file__).parent / "data"


def real(name: str) -> str:
    return (DATA / name).read_text(errors="replace")  # as Duplicity.run reads it


def outcome(stem: str) -> Outcome:
    """As ``Duplicity.run`` returns it."""
    return Outcome(parse_log(real(f"{stem}.log")))


def escape(name: str | bytes) -> str:
    """duplicity.util.escape (duplicity 3.2.1), the same algorithm."""
    text = os.fsdecode(name).encode("unicode-escape", "replace")
    escaped = text.decode("utf8", "replace").replace("'", "\\x27")
    return f"'{escaped}'"


# --- parse_log ------------------------------------------------------------------------------

def test_a_real_log_parses_into_its_records():
    text = real("duplicity-incremental.log")
    records = parse_log(text)
    heads = [line for line in text.splitlines() if line[:1].isupper()]
    assert len(records) == len(heads)
    assert {r.level for r in records} == {"INFO", "NOTICE"}
    assert records[0] == LogRecord("INFO", 1, "", ["GPG binary is /usr/bin/gpg, version 2.2.40"])
    changed = [r for r in records if r.code in (4, 5, 6) and r.level == "INFO"]
    assert [(r.code, r.extra) for r in changed] == [
        (4, "'.'"), (4, "'added\"dq.txt'"), (4, "'dir'"), (5, "'dir/changed.txt'"),
        (6, "'dir/gone.txt'"), (6, "'it\\x27s.txt'"), (5, "'new\\nline.txt'")]
    assert changed[-1].text == ["M new", "line.txt"]  # a name's line break splits its text
    progress = next(r for r in records if r.code == 2)
    assert progress.extra == "8225" and progress.text == ["Processed volume 1"]


def test_parse_log_edge_cases():
    text = "stray line before any record\nNOTICE 1\n.\n. after an empty line\n\n" \
           "ERROR 30 Exception extra words\n. boom\nnot a record 5\nlower 1\n"
    assert parse_log(text) == [LogRecord("NOTICE", 1, "", ["", "after an empty line"]),
                               LogRecord("ERROR", 30, "Exception extra words", ["boom"])]
    assert parse_log("") == []


records = st.builds(
    LogRecord, st.sampled_from(["INFO", "NOTICE", "WARNING", "ERROR", "DEBUG"]),
    st.integers(1, 99), st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl",
                                                                             "Zp")),
                                max_size=20).map(str.strip),
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                     max_size=20), max_size=3))


def written(record: LogRecord) -> str:
    """A record as duplicity's log file handler writes it."""
    head = f"{record.level} {record.code}" + (f" {record.extra}" if record.extra else "")
    return "\n".join([head, *(f". {line}" for line in record.text)]) + "\n\n"


@settings(max_examples=30)
@given(st.lists(records, max_size=6))
def test_parse_log_reads_back_what_duplicity_writes(written_records):
    assert parse_log("".join(written(r) for r in written_records)) == written_records


# --- unescape -------------------------------------------------------------------------------

names = st.one_of(st.binary(min_size=1, max_size=20).map(os.fsdecode),
                  st.text(min_size=1, max_size=20),
                  st.text(alphabet="'\"\\\n\t x\x7f\x85é€😀", min_size=1, max_size=10))


@settings(max_examples=100)
@given(names)
@example("it's \"quoted\"")
@example("new\nline\\n'\\x27")
@example("caf\udce9\udcff.txt")
@example("back\\slash\\")
@example(" leading and trailing ")
def test_unescape_reverses_duplicitys_escape(name):
    quoted = escape(name)
    assert quoted.isascii() and "\n" not in quoted  # one field of one log line
    assert unescape(quoted) == name
    assert unescape(f"  {quoted} ") == name


@settings(max_examples=50)
@given(st.binary(min_size=1, max_size=20))
def test_escaped_bytes_come_back_exactly(raw):
    assert os.fsencode(unescape(escape(raw))) == raw


def test_the_real_logs_escaped_names_unescape_to_what_duplicity_printed():
    for stem in ("duplicity-full", "duplicity-incremental"):
        for record in parse_log(real(f"{stem}.log")):
            if record.level == "INFO" and record.code in (4, 5, 6):
                change = "AMD"[record.code - 4]
                assert "\n".join(record.text) == f"{change} {unescape(record.extra)}"


# --- statistics, unreadable and listed files ------------------------------------------------

def test_statistics_of_real_backups():
    full = statistics(parse_log(real("duplicity-full.log")))
    assert (full["SourceFiles"], full["NewFiles"], full["DeletedFiles"], full["Errors"]) == (
        12, 12, 0, 0)
    assert full["TotalDestinationSizeChange"] == 497 and full["ElapsedTime"] == 0.05
    incremental = outcome("duplicity-incremental").statistics()
    assert {key: incremental[key] for key in ("SourceFiles", "NewFiles", "DeletedFiles",
                                              "ChangedFiles", "DeltaEntries", "Errors")} == {
        "SourceFiles": 12, "NewFiles": 4, "DeletedFiles": 2, "ChangedFiles": 2,
        "DeltaEntries": 8, "Errors": 0}
    assert statistics(parse_log(real("duplicity-unreadable.log")))["Errors"] == 1
    assert statistics(parse_log(real("duplicity-list-current-files.log"))) == {}
    assert statistics([]) == {}


def test_an_unreadable_file_is_named():
    records = parse_log(real("duplicity-unreadable.log"))
    assert [p.lstrip("/") for p in unreadable_files(records)] == ["tmp/fx2/src/locked it's.txt"]
    assert unreadable_files(parse_log(real("duplicity-incremental.log"))) == []


def test_unreadable_files_are_relative_to_the_root_like_every_other_path():
    records = parse_log(real("duplicity-unreadable.log"))
    assert unreadable_files(records) == ["tmp/fx2/src/locked it's.txt"]
    assert [shown(p) for p in unreadable_files(records)] == ["/tmp/fx2/src/locked it's.txt"]


def stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def test_listed_files_of_a_real_listing():
    earlier, later = stamp("20261124T134934Z"), stamp("20261124T134936Z")
    assert listed_files(parse_log(real("duplicity-list-current-files.log"))) == [
        (".", "dir", later), ('added"dq.txt', "file", later),
        ("back\\slash.txt", "file", earlier), ("café-utf8.txt", "file", earlier),
        ("dir", "dir", later), ("dir/changed.txt", "file", later),
        ("new\nline.txt", "file", later), ("plain.txt", "file", earlier),
        ("tab\there", "file", earlier), ("with space.txt", "file", earlier)]


def test_listed_files_types_and_odd_stamps():
    records = [LogRecord("INFO", 10, "20121204T120000Z 'a b' sym"),
               LogRecord("INFO", 10, "20121204T120000Z 'fifo' fifo"),
               LogRecord("INFO", 10, "garbage 'x' reg"),
               LogRecord("INFO", 10, ""), LogRecord("NOTICE", 10, "20121204T120000Z 'n' reg")]
    assert listed_files(records) == [
        ("a b", "symlink", datetime(2012, 12, 4, 12, tzinfo=UTC)),
        ("fifo", "other", datetime(2012, 12, 4, 12, tzinfo=UTC)), ("x", "file", None)]


# --- failure --------------------------------------------------------------------------------

SETTINGS = Settings(config_path=Path("/etc/cya/config.toml"), tree=Path("/var/backups/cya"),
                    sources=(Path("/home/me"),),
                    encryption=Encryption("passphrase", Path("/etc/cya/passphrase")))
GPG_SETTINGS = Settings(config_path=Path("/etc/cya/config.toml"), tree=Path("/var/backups/cya"),
                        sources=(Path("/home/me"),), encryption=Encryption("gpg-key", None, "ABCD"))


def gpg_error(*gpg_lines: str) -> LogRecord:
    """An ERROR record as duplicity logs a failed gpg (GPGError, code 31)."""
    return LogRecord("ERROR", 31, "GPGError", [
        "GPGError: GPG Failed, see log below:", "===== Begin GnuPG log =====", *gpg_lines,
        "===== End GnuPG log =====", ""])


def failed(returncode, records=(), tail=(), settings=SETTINGS, doing="back up"
           ) -> CommandFailed:
    error = failure(returncode, list(records), list(tail), settings, doing)
    assert isinstance(error, CommandFailed)
    assert error.exit_code == EXIT_FAILED == 1
    assert error.detail == "\n".join(tail)
    assert "\n" not in error.one_line()
    return error


def test_a_full_disk():
    error = failed(50, [LogRecord("ERROR", 50, "BackendException", [
        "BackendException: [Errno 28] No space left on device: '/var/backups/cya/x'"])])
    assert error.message == "disk full: no space left while trying to back up"
    assert "free some space" in error.hint and "no earlier backup was touched" in error.hint
    assert failed(53, [LogRecord("ERROR", 53, "", ["out of room"])]).message.startswith(
        "disk full")
    assert failed(1, tail=["OSError: [Errno 28] No space left on device"],
                  doing="restore").message == "disk full: no space left while trying to restore"
    # a full disk is named even when gpg is what noticed it
    assert failed(31, [gpg_error("gpg: write failed: No space left on device")]).message \
        .startswith("disk full")


def test_not_enough_free_space():
    error = failed(35, [LogRecord("ERROR", 35, "", [
        "Temp space has 1,000 available, backup needs approx 2,000."])])
    assert error.message == ("disk full: not enough free space in /var/backups/cya "
                             "(Temp space has 1,000 available, backup needs approx 2,000)")
    assert "--volsize" in error.hint


def test_a_wrong_passphrase():
    error = failed(31, [gpg_error("gpg: decryption failed: Bad session key")], doing="restore")
    assert error.message == ("wrong passphrase: duplicity cannot decrypt the existing backups "
                             "with the passphrase in /etc/cya/passphrase")
    assert "put back the passphrase" in error.hint
    error = failed(31, [gpg_error("gpg: decryption failed: No secret key")],
                   settings=GPG_SETTINGS)
    assert error.message.startswith("wrong passphrase") and error.message.endswith("the gpg key")


@pytest.mark.parametrize("lines", [
    ["gpg: [don't know]: invalid packet (ctb=3f)", "gpg: decryption failed: Invalid packet"],
    ["gpg: block_filter 0x5611: read error (size=15,a->size=15)", "gpg: Invalid packet"],
])
def test_damaged_encrypted_data(lines):
    error = failed(31, [gpg_error(*lines)], doing="restore")
    assert error.message == ("a file of the chain is damaged (duplicity: GPGError: GPG Failed, "
                             "see log below:) while trying to restore")
    assert error.hint.startswith("run: cya check")


def test_a_hash_mismatch_is_damage():
    record = LogRecord("ERROR", 21, "", [
        "Invalid data - SHA1 hash mismatch for file:",
        " duplicity-full.20121204T120000Z.vol1.difftar.gpg",
        " Calculated hash: 0000000000000000000000000000000000000000",
        " Manifest hash: 1111111111111111111111111111111111111111", ""])
    error = failed(21, [record], doing="restore")
    assert error.message == ("a file of the chain is damaged (duplicity: Invalid data - SHA1 "
                             "hash mismatch for file:) while trying to restore")
    assert "cya check" in error.hint and "other backups are not affected" in error.hint


def test_a_hostname_mismatch():
    record = LogRecord("ERROR", 3, "'newhost' 'oldhost'", [
        "Fatal Error: Backup source host has changed.", "Current hostname: newhost",
        "Previous hostname: oldhost", "", "Aborting because you may have accidentally tried "
        "to backup two different data sets to the same remote location, or using the same "
        "archive directory.  If this is not a mistake, use the --allow-source-mismatch switch "
        "to avoid seeing this message"])
    error = failed(3, [record])
    assert error.message == "this machine's hostname differs from the one that made the chain"
    assert "--allow-source-mismatch" in error.hint


def test_a_source_mismatch():
    record = LogRecord("ERROR", 42, "'/' '/srv'", [
        "Fatal Error: Backup source directory has changed.", "Current directory: /",
        "Previous directory: /srv", "", "Aborting because ..."])
    error = failed(42, [record])
    assert error.message == "the chain was made from a different source path"
    assert "--allow-source-mismatch" in error.hint


def test_other_mapped_codes():
    error = failed(81, [LogRecord("ERROR", 81, "", ["gpg: ABCD: skipped: No public key"])],
                   settings=GPG_SETTINGS)
    assert error.message == "gpg cannot encrypt to key 'ABCD'"
    error = failed(23, [LogRecord("ERROR", 23, "UserError", [
        "UserError: Backup source directory /home/gone does not exist."])])
    assert error.message == "duplicity: UserError: Backup source directory /home/gone does " \
        "not exist."
    assert "check sources" in error.hint


def test_anything_else_is_named_with_its_code():
    error = failed(30, [LogRecord("ERROR", 30, "Exception", ["", "Exception: boom", "more"])],
                   tail=["line 1", "line 2"], doing="list a backup's files")
    assert error.message == ("duplicity failed (error 30) while trying to list a backup's "
                             "files: Exception: boom")
    assert error.hint == "run with -v to see duplicity's output"
    # the last ERROR's code wins over the exit status
    two = [LogRecord("ERROR", 38, "", ["first"]), LogRecord("ERROR", 50, "", ["second"])]
    assert failed(1, two).message.startswith("duplicity failed (error 50)")
    # no log at all: the console's last line, else the exit status
    assert failed(2, tail=["usage: duplicity ...", "bad option --x"]).message == \
        "duplicity failed (error 2) while trying to back up: bad option --x"
    assert failed(137).message == "duplicity failed (error 137) while trying to back up: " \
        "exit status 137"
