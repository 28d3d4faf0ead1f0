"""Off-site every day (issue 9's acceptance), against a real S3-protocol server
(moto_server over HTTP) with the default cadence:

* every daily backup's files and its record reach the bucket in the same run;
* nothing in Standard names the user's data in plain text;
* 200 days later the remote retention deletes only what no kept point needs, nothing
  younger than ``min_age_days``, and nothing is sent again afterwards;
* the machine is lost: ``recover`` on a new one, ``find`` and ``ls --date`` from the
  encrypted indexes without a thaw, ``--max-cost`` refusing before S3 is asked
  anything, and ``restore --from-archive --wait`` giving back the last day exactly;
* a restore waiting for a thaw never holds up the daily backup.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import (
    CYA,
    Workspace,
    assert_one_line_error,
    change_source,
    restored_source,
    snapshot,
)
from tests.s3.conftest import CREDENTIALS, archive_workspace, keys, set_thaw_pending

# twelve backups over three weeks (Sundays 1, 8 and 15 start them)
DAYS = [f"2026-03-{day:02d}" for day in (1, 2, 3, 5, 8, 9, 11, 12, 14, 15, 17, 20)]
ADDED = "added on 2026-03-12.txt"
EXCLUDE = "**/*.kept-off-the-record"
# dropped by the remote retention once the tree let go of their week (the 1st's full
# stays: the month level still holds it)
DROPPED = ["2026-03-02", "2026-03-03", "2026-03-05"]


def stamp(day: str) -> str:
    return f"{day.replace('-', '')}T120000Z"


def get_json(s3, key: str):
    return json.loads(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())


def manifest_key(bag: str) -> str:
    return "manifests/" + bag.removeprefix("bags/").removesuffix(".tar") + ".json"


def assert_restorable_from_the_bucket(s3, day: str) -> list[str]:
    """The bucket holds the record of the backup of ``day`` and every file of its chain:
    each entry's bag in Deep Archive, with a member at that offset, of that size and
    SHA-256, in the bag's manifest; and the chain is whole (a full, then increments each
    starting where the one before ended, up to this backup). Return the chain's names."""
    found = keys(s3)
    record = get_json(s3, f"backups/{stamp(day)}.json")
    assert record["time"] == stamp(day)
    members: dict[str, dict] = {}
    for entry in record["chain"]:
        bag = entry["bag"]
        assert found[bag]["StorageClass"] == "DEEP_ARCHIVE", (day, bag)
        if bag not in members:
            manifest = get_json(s3, manifest_key(bag))
            assert manifest["bag"] == bag and manifest["size"] == found[bag]["Size"]
            members[bag] = {m["path"]: m for m in manifest["members"]}
        member = members[bag][entry["member"]]
        assert entry["member"].endswith("/files/" + entry["name"])
        assert (member["offset"], member["size"], member["sha256"]) == (
            entry["offset"], entry["size"], entry["sha256"]), (day, entry)
        assert member["offset"] + member["size"] <= found[bag]["Size"]
    names = [entry["name"] for entry in record["chain"]]
    (full,) = [n for n in names if n.startswith("duplicity-full.") and n.endswith(".manifest.gpg")]
    steps = dict(n.removeprefix("duplicity-inc.").removesuffix(".manifest.gpg").split(".to.")
                 for n in names if n.startswith("duplicity-inc.") and n.endswith(".manifest.gpg"))
    time = full.split(".")[1]
    for _ in steps:
        time = steps[time]
    assert time == stamp(day), (day, names)
    for begin in [full.split(".")[1], *steps]:  # each set has its volume and signatures
        assert any(".vol1.difftar" in n and (begin in n.split(".to.")[0]) for n in names)
    assert len(names) == len(set(names))
    return names


def change(ws: Workspace, number: int, day: str) -> None:
    """A handful of small changes a day (a restore keeps mtimes to the second, whatever
    they are); on the 12th a new file; every day a file the exclude pattern keeps out."""
    change_source(ws.source, number)
    (ws.source / "daily").mkdir(exist_ok=True)
    (ws.source / "daily" / f"log of {day}.txt").write_text(f"{day}\n" * 20)
    (ws.source / f"scratch {day}.kept-off-the-record").write_text("not backed up\n")
    if day == "2026-03-12":
        (ws.source / "docs" / ADDED).write_text("first seen on the 12th\n")


def restore_states(s3) -> dict[str, str | None]:
    """Every bag's thaw state as S3 reports it (None: never asked to thaw)."""
    return {key: s3.head_object(Bucket=s3.bucket, Key=key).get("Restore")
            for key in keys(s3, "bags/")}


def test_daily_backups_are_off_site_the_same_day_and_the_bucket_alone_restores(tmp_path, s3):
    ws = archive_workspace(tmp_path / "machine", s3)
    ws.env["HOME"] = str(ws.base / "home")
    Path(ws.env["HOME"]).mkdir()
    text = ws.config.read_text()
    assert "exclude = []" in text
    ws.config.write_text(text.replace("exclude = []", f'exclude = ["{EXCLUDE}"]'))

    # -- every day: the backup's record and every file of its chain, the same run
    states = {}
    for number, day in enumerate(DAYS):
        change(ws, number, day)
        result = ws.backup(f"{day}T12:00")
        assert "1 backup record(s)" in result.stdout, result.stdout
        states[day] = snapshot(ws.source)
        assert_restorable_from_the_bucket(s3, day)
    assert sorted(p.name for p in (ws.tree / "2000/2020/2026/2026-03").iterdir()
                  if p.name != "files") == ["2026-03-08", "2026-03-15"]
    kept = [day for day in DAYS if day not in DROPPED]
    found = keys(s3)
    assert sorted(k for k in found if k.startswith("backups/")) == \
        [f"backups/{stamp(day)}.json" for day in kept]
    assert sorted(k for k in found if k.startswith("indexes/")) == \
        [f"indexes/{stamp(day)}.gpg" for day in kept]

    # -- nothing in Standard names the user's data in plain text
    secrets = [str(ws.source), EXCLUDE, "kept-off-the-record", ADDED, "journal.txt",
               "private.key", "data.bin", "ünïcödé naïve.txt", "note 3.txt", "log of 2026"]
    standard = [k for k, item in found.items() if item["StorageClass"] == "STANDARD"]
    assert {"system/catalog.sqlite", "system/config.toml.gpg", "system/setup.json"} <= \
        set(standard) and len(standard) >= 3 + 3 * len(kept)  # and manifests, records
    for key in standard:
        data = s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        for secret in secrets:
            assert secret.encode() not in data, (key, secret)

    # -- 200 days after the uploads: the remote retention
    needed = set()
    for day in kept:
        needed |= set(assert_restorable_from_the_bucket(s3, day))
    unneeded = []
    for bag in [k for k in found if k.startswith("bags/")]:
        names = [m["path"].rsplit("/", 1)[1] for m in get_json(s3, manifest_key(bag))["members"]]
        if not set(names) & needed:
            unneeded.append(bag)
            # only the increments of the dropped backups
            assert all(any(f".to.{stamp(day)}." in n for day in DROPPED) for n in names)
    assert len(unneeded) == len(DROPPED), unneeded  # one small bag a day
    soon = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    young = json.loads(ws.cya("--now", soon, "archive", "prune", "--dry-run", "--json").stdout)
    assert young["drop"] == [] and young["delete"] == []  # nothing younger than 180 days
    assert sorted(d["key"] for d in young["defer"]) == sorted(unneeded)
    plan = json.loads(ws.cya("--now", later, "archive", "prune", "--dry-run", "--json").stdout)
    assert plan["drop"] == [] and plan["defer"] == [] and not plan["applied"]
    assert sorted(plan["delete"]) == sorted(unneeded)
    assert keys(s3).keys() == found.keys()  # a plan deletes nothing
    ws.cya("--now", later, "archive", "prune", "--yes")
    pruned = keys(s3)
    gone = set(unneeded) | {manifest_key(bag) for bag in unneeded}
    assert pruned.keys() == found.keys() - gone
    for day in kept:  # every kept point still has its whole chain
        assert_restorable_from_the_bucket(s3, day)
    # no loop: nothing is sent again, now or on the next run
    dry = json.loads(ws.cya("archive", "--dry-run", "--json").stdout)
    assert dry["bags"] == 0 and dry["upload_bytes"] == 0, dry
    assert "the bucket holds everything due" in ws.cya("archive").stdout
    assert {k for k in keys(s3) if k.startswith("bags/")} == \
        {k for k in pruned if k.startswith("bags/")}

    # -- the machine is lost: tree, config, cache, HOME and the data itself
    kept_passphrase = tmp_path / "safe" / "passphrase"
    kept_passphrase.parent.mkdir(mode=0o700)
    shutil.copy(ws.passphrase_file, kept_passphrase)
    kept_passphrase.chmod(0o600)
    for lost in (ws.tree, ws.config.parent, ws.cache, ws.base / "xdg-config",
                 Path(ws.env["HOME"]), ws.source):
        if lost.exists():
            shutil.rmtree(lost)
    new = Workspace(tmp_path / "new-machine")
    new.env.update(CREDENTIALS)
    new.env["HOME"] = str(new.base / "home")
    Path(new.env["HOME"]).mkdir()
    recovered = new.cya("recover", "--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
                        "--tree", str(new.tree), "--passphrase-file", str(kept_passphrase))
    assert f"the archive holds {len(kept)} backup(s), newest {stamp(DAYS[-1])}" in \
        recovered.stdout, recovered.stdout

    # find and ls name what the archive holds, from the encrypted indexes: no thaw
    found_json = json.loads(new.cya("find", ADDED, "--json").stdout)
    assert [f["backup"] for f in found_json] == \
        [f"{day}T12:00:00Z" for day in kept if day >= "2026-03-12"]
    assert all(f["archive_only"] and f["archive_cost_usd"] is not None for f in found_json)
    assert all([m["path"].rsplit("/", 2)[1:] for m in f["matches"]] == [["docs", ADDED]]
               for f in found_json)
    listed = new.cya("ls", "--date", "2026-03-12", str(ws.source / "docs"))
    assert "in the archive only" in listed.stdout and ADDED in listed.stdout
    assert set(restore_states(s3).values()) == {None}
    assert json.loads(new.cya("archive", "status", "--json").stdout)["thaws"] == {}

    # --max-cost below the estimate: refused before anything is asked of S3
    target = tmp_path / "restored"
    refused = new.cya("restore", "--date", "2026-03-20", "--target", str(target),
                      "--from-archive", "--wait", "--max-cost", "0", check=False)
    assert_one_line_error(refused, 2, "--max-cost", "nothing was asked of S3")
    assert not target.exists() and set(restore_states(s3).values()) == {None}

    # every kept point is chosen from the archive; the last day comes back exactly
    for day in kept:
        dry = new.cya("restore", "--date", day, "--target", str(target), "--from-archive",
                      "--dry-run")
        assert f"as of {day} 12:00:00" in dry.stdout, (day, dry.stdout)
    for day in ("2026-03-20", "2026-03-08"):
        into = target / day
        restored = new.cya("restore", "--date", day, "--target", str(into), "--from-archive",
                           "--wait")
        assert "every SHA-256 verified" in restored.stdout
        # exactly the source of that day, less what the exclude pattern keeps out
        expected = {path: item for path, item in states[day].items()
                    if not path.endswith(".kept-off-the-record")}
        assert len(expected) < len(states[day])
        assert snapshot(restored_source(into, ws.source)) == expected, day


def lines_of(process: subprocess.Popen) -> queue.Queue:
    """A queue receiving the process's output lines as they come (None at the end)."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_a_restore_waiting_for_a_thaw_never_holds_up_the_backup(tmp_path, s3):
    ws = archive_workspace(tmp_path, s3)
    change_source(ws.source, 0)
    ws.backup("2026-03-01T12:00")
    expected = snapshot(ws.source)
    target = tmp_path / "restored"
    # the thaw cya asks for is in progress on the HEAD right after it (moto counts two
    # ticks a HEAD); once cya waits, it stays in progress until released below
    set_thaw_pending(s3.endpoint, 4)
    restore = subprocess.Popen(
        [CYA, "restore", "--date", "2026-03-01", "--target", str(target), "--from-archive",
         "--wait"], env={**ws.env, "CYA_THAW_POLL_SECONDS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = lines_of(restore)
        said = []
        while not said or "waiting for" not in said[-1]:
            said.append(lines.get(timeout=60))
            assert said[-1] is not None, (said, restore.stderr.read())
        set_thaw_pending(s3.endpoint, 10**6)
        assert any("asked S3 to thaw" in line for line in said), said
        change_source(ws.source, 1)
        backup = ws.backup("2026-03-02T12:00")
        assert "backed up 2026-03-02 12:00:00" in backup.stdout
        assert "1 backup record(s)" in backup.stdout
        assert restore.poll() is None  # still waiting for the thaw all along
    finally:
        set_thaw_pending(s3.endpoint, None)
    try:
        restore.wait(120)
    finally:
        if restore.poll() is None:
            restore.kill()
    rest = []
    while (line := lines.get(timeout=10)) is not None:
        rest.append(line)
    assert restore.returncode == 0, (said, rest, restore.stderr.read())
    assert any("every SHA-256 verified" in line for line in rest)
    assert snapshot(restored_source(target, ws.source)) == expected
    assert "backups/20260302T120000Z.json" in keys(s3, "backups/")
