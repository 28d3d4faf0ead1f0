"""Hooks and monitoring as an operator meets them: through ``cya backup`` and ``cya
restore`` on a real tree, with a real HTTP server on 127.0.0.1 taking the pings."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from tests.helpers import Workspace, change_source, snapshot, tree_state
from tests.integration.test_monitoring import no_proxy, server  # noqa: F401 (fixtures)

RECORD = ("import json, os, sys; "
          "open(sys.argv[1], 'a').write(json.dumps({k: v for k, v in os.environ.items() "
          "if k.startswith('CYA_')}) + '\\n')")


def hook(log: Path) -> str:
    """A hook (TOML) that appends its CYA_* environment to ``log`` as a JSON line."""
    return json.dumps([sys.executable, "-c", RECORD, str(log)])


def runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def with_hooks(ws: Workspace, **kinds: str) -> None:
    lines = "".join(f"{kind} = [{command}]\n" for kind, command in kinds.items())
    ws.config.write_text(ws.config.read_text() + f"\n[hooks]\n{lines}")


def test_hooks_frame_a_backup_and_are_told_what_happened(tmp_path):
    ws = Workspace(tmp_path)
    ws.init()
    logs = {kind: tmp_path / f"{kind}.jsonl" for kind in
            ("before_backup", "after_backup", "on_error", "before_restore", "after_restore")}
    with_hooks(ws, **{kind: hook(log) for kind, log in logs.items()})
    change_source(ws.source, 0)
    ws.backup("2012-12-04T12:00")
    (before,), (after,) = runs(logs["before_backup"]), runs(logs["after_backup"])
    assert before["CYA_HOOK"] == "before_backup" and before["CYA_TREE"] == str(ws.tree)
    assert before["CYA_LEAF"] == after["CYA_LEAF"] == "2000/2010/2012/2012-12/2012-12-02"
    assert after["CYA_BACKUP_TIME"].startswith("2012-12-04T12:00:00")
    assert (after["CYA_STATUS"], after["CYA_ERROR"]) == ("ok", "")
    assert runs(logs["on_error"]) == []
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2012-12-04", "--target", str(target))
    assert snapshot(target / str(ws.source).lstrip("/")) == snapshot(ws.source)
    (restore_before,), (restore_after,) = runs(logs["before_restore"]), \
        runs(logs["after_restore"])
    assert restore_before["CYA_RESTORE_TARGET"] == restore_after["CYA_RESTORE_TARGET"] \
        == str(target)


def test_a_failing_before_backup_hook_writes_nothing_and_on_error_is_told(tmp_path):
    ws = Workspace(tmp_path)
    ws.init()
    change_source(ws.source, 0)
    ws.backup("2012-12-04T12:00")
    errors = tmp_path / "on_error.jsonl"
    with_hooks(ws, before_backup=json.dumps(["sh", "-c", "echo snapshot failed >&2; exit 3"]),
               on_error=hook(errors))
    change_source(ws.source, 1)
    before = tree_state(ws.tree)
    result = ws.backup("2012-12-05T12:00", check=False)
    assert result.returncode == 1
    assert "before_backup hook sh failed with exit status 3" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_state(ws.tree) == before  # nothing written
    (told,) = runs(errors)
    assert told["CYA_STATUS"] == "failed" and "exit status 3" in told["CYA_ERROR"]


def test_on_error_runs_for_a_failure_before_the_tree_is_opened(tmp_path):
    """A missing source fails the run before any tree is touched: on_error still hears."""
    ws = Workspace(tmp_path)
    ws.init()
    errors = tmp_path / "on_error.jsonl"
    with_hooks(ws, on_error=hook(errors))
    ws.source.rename(tmp_path / "gone")
    result = ws.backup("2012-12-04T12:00", check=False)
    assert result.returncode in (1, 2), result.stderr
    (told,) = runs(errors)
    assert told["CYA_STATUS"] == "failed" and str(ws.source) in told["CYA_ERROR"]


def test_after_backup_runs_when_archiving_failed_and_says_partial(tmp_path):
    """The backup is kept; the archive step fails (no bucket answers): after_backup and
    on_error are told "partial", and the run exits 1."""
    ws = Workspace(tmp_path)
    ws.init("--bucket", "cya-not-there", "--endpoint-url", "http://127.0.0.1:9")
    after, errors = tmp_path / "after.jsonl", tmp_path / "on_error.jsonl"
    with_hooks(ws, after_backup=hook(after), on_error=hook(errors))
    change_source(ws.source, 0)
    result = ws.backup("2012-12-04T12:00", check=False)
    assert result.returncode == 1, result.stderr
    assert "backed up 2012-12-04 12:00:00" in result.stdout
    (told,) = runs(after)
    assert told["CYA_STATUS"] == "partial" and "archiving failed" in told["CYA_ERROR"]
    (error,) = runs(errors)
    assert error["CYA_STATUS"] == "partial"
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2012-12-04", "--target", str(target))
    assert snapshot(target / str(ws.source).lstrip("/")) == snapshot(ws.source)


def test_monitoring_pings_start_success_and_failure_with_the_log(tmp_path, server):  # noqa: F811
    ws = Workspace(tmp_path)
    ws.init()
    ws.config.write_text(ws.config.read_text() + f'\n[monitoring]\nping_url = "{server.url}"\n')
    change_source(ws.source, 0)
    ws.backup("2012-12-04T12:00")
    prefix = "/ping/0b3e1c52-uuid"
    assert [p.path.removeprefix(prefix) for p in server.pings] == ["/start", ""]
    start, success = server.pings
    assert start.query["rid"] == success.query["rid"]  # one run
    server.pings.clear()
    ws.backup("2012-12-05T12:00", "--dry-run")  # a dry run is not a run to watch
    assert server.pings == []
    os.chmod(ws.passphrase_file, 0o644)  # a mistake the run stops on
    result = ws.backup("2012-12-05T12:00", check=False)
    assert result.returncode == 2
    (failure,) = server.pings
    assert failure.path == f"{prefix}/fail"
    assert b"chmod 600" in failure.body and b"passphrase" in failure.body
    assert ws.passphrase().encode() not in failure.body


def test_on_a_terminal_a_backup_shows_a_live_line_and_off_it_nothing(tmp_path):
    """The status line is written to a terminal, rewritten in place with carriage
    returns, and cleared; cron (no terminal) and -q get none of it."""
    import pty
    import select
    import subprocess

    ws = Workspace(tmp_path)
    ws.init()
    for number in range(400):  # enough paths that duplicity reports for a while
        (ws.source / f"f{number:03d}").write_bytes(os.urandom(20_000))
    leader, follower = pty.openpty()
    process = subprocess.Popen(["cya", "--now", "2012-12-04T12:00", "backup"],
                               env={**ws.env, "PATH": str(Path(sys.executable).parent) + ":"
                                    + os.environ["PATH"]},
                               stdout=subprocess.PIPE, stderr=follower, text=False)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    out, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0, seen
    assert b"\rbacking up: " in seen, seen
    # cleared at the end: the last line overwritten with spaces, the cursor back at its start
    last = seen.rsplit(b"\rbacking up: ", 1)[1]
    assert re.fullmatch(rb"[^\r]*\r +\r", last), seen[-300:]
    assert b"backed up 2012-12-04 12:00:00" in out
    quiet = ws.backup("2012-12-05T12:00")  # stderr a pipe: no status line
    assert "\r" not in quiet.stderr and "backing up:" not in quiet.stderr
