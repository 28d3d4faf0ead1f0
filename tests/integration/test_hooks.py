"""Hooks run as real processes: their environment, their failures, their timeout, their
arguments; and the config that declares them."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import cya
from cya import config, execute
from cya.config import Hooks
from cya.errors import ConfigError, HookFailed
from cya.hooks import HookContext, run_hooks
from tests.helpers import as_from_a_terminal, live_processes

PYTHON = sys.executable
ROOT = Path(cya.__file__).resolve().parents[1]


def context(tmp_path: Path, **changes) -> HookContext:
    values = dict(tree=tmp_path / "tree", config=tmp_path / "config.toml",
                  leaf="2000/2020/2024/2024-03/2024-03-03",
                  backup_time=datetime(2024, 3, 5, 3, 17, 0, tzinfo=timezone(timedelta(hours=1))))
    values.update(changes)
    return HookContext(**values)


def dump_env(path: Path) -> tuple[str, ...]:
    """A hook that writes the CYA_ part of its environment to ``path`` as JSON."""
    code = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
            "if k.startswith('CYA_')}, open(sys.argv[1], 'w'))")
    return (PYTHON, "-c", code, str(path))


def processes_with(marker: str) -> list[str]:
    """Command lines of running processes that mention ``marker``."""
    lines = (b" ".join(argv).decode(errors="replace") for argv in live_processes().values())
    return [line for line in lines if marker in line]


def test_a_hook_is_told_the_run_in_its_environment(tmp_path):
    out = tmp_path / "env.json"
    hooks = Hooks(after_backup=(dump_env(out),))
    run_hooks("after_backup", hooks, context(tmp_path, status="partial",
                                             error="trimming failed:\nthe disk\tis full"))
    env = json.loads(out.read_text())
    assert env == {
        "CYA_HOOK": "after_backup",
        "CYA_CONFIG": str(tmp_path / "config.toml"),
        "CYA_TREE": str(tmp_path / "tree"),
        "CYA_LEAF": "2000/2020/2024/2024-03/2024-03-03",
        "CYA_BACKUP_TIME": "2024-03-05T03:17:00+01:00",
        "CYA_STATUS": "partial",
        "CYA_ERROR": "trimming failed: the disk is full",
    }
    assert datetime.fromisoformat(env["CYA_BACKUP_TIME"]).utcoffset() == timedelta(hours=1)


def test_a_successful_run_has_an_empty_error_and_restore_hooks_get_the_target(tmp_path):
    out = tmp_path / "env.json"
    hooks = Hooks(before_restore=(dump_env(out),))
    run_hooks("before_restore", hooks, context(tmp_path, leaf="", backup_time=None,
                                               restore_target=tmp_path / "target"))
    env = json.loads(out.read_text())
    assert env["CYA_STATUS"] == "ok" and env["CYA_ERROR"] == ""
    assert env["CYA_LEAF"] == "" and env["CYA_BACKUP_TIME"] == ""
    assert env["CYA_HOOK"] == "before_restore"
    assert env["CYA_RESTORE_TARGET"] == str(tmp_path / "target")


def test_hook_output_goes_to_the_log_prefixed_with_its_kind(tmp_path, caplog):
    hooks = Hooks(before_backup=(("sh", "-c", "echo dumping; echo 'to stderr' >&2"),))
    with caplog.at_level(logging.INFO, logger="cya"):
        run_hooks("before_backup", hooks, context(tmp_path))
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "before_backup: dumping" in lines
    assert "before_backup: to stderr" in lines


def test_a_failing_hook_names_its_program_status_and_output_and_stops_its_kind(tmp_path):
    later = tmp_path / "later-ran"
    hooks = Hooks(on_error=(
        ("sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo 'pg_dump: no db' >&2;"
                     " exit 3"),
        ("touch", str(later)),
    ))
    with pytest.raises(HookFailed) as caught:
        run_hooks("on_error", hooks, context(tmp_path, status="failed", error="boom"))
    error = caught.value
    assert error.exit_code == 1
    assert error.message.startswith("on_error hook sh failed with exit status 3: ")
    assert "line 4 | line 5 | pg_dump: no db" in error.message
    assert "line 1" not in error.message
    assert error.detail.splitlines() == ["line 1", "line 2", "line 3", "line 4", "line 5",
                                         "pg_dump: no db"]
    assert "\n" not in error.one_line()
    assert not later.exists()


def test_a_program_that_does_not_exist_is_a_hook_failure(tmp_path):
    hooks = Hooks(before_backup=(("/nonexistent/pg_dump", "-f", "x"),))
    with pytest.raises(HookFailed) as caught:
        run_hooks("before_backup", hooks, context(tmp_path))
    assert "before_backup hook /nonexistent/pg_dump could not be started" in caught.value.message
    assert "hooks.before_backup" in caught.value.hint


def test_a_hook_past_its_timeout_is_killed_with_its_children(tmp_path):
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    # A shell that leaves a background child and waits on a foreground one.
    hooks = Hooks(before_backup=(("sh", "-c", f"sleep {marker}1 & sleep {marker}2; echo late"),),
                  timeout=1.0)
    started = time.monotonic()
    with pytest.raises(HookFailed) as caught:
        run_hooks("before_backup", hooks, context(tmp_path))
    elapsed = time.monotonic() - started
    assert "before_backup hook sh timed out after 1 s" in caught.value.message
    assert "hooks.timeout" in caught.value.hint
    # The group died of SIGTERM at once: no wait for the grace period before SIGKILL.
    assert elapsed < 1.0 + 1.5
    assert processes_with(f"sleep {marker}") == []


def test_children_that_ignore_sigterm_are_killed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setattr(execute, "GRACE_SECONDS", 0.5)
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    hooks = Hooks(after_backup=(("sh", "-c", f"trap '' TERM; sleep {marker}3 & sleep {marker}4"),),
                  timeout=1.0)
    started = time.monotonic()
    with pytest.raises(HookFailed, match="timed out after 1 s"):
        run_hooks("after_backup", hooks, context(tmp_path))
    assert time.monotonic() - started < 6
    assert processes_with(f"sleep {marker}") == []


def test_arguments_reach_the_program_verbatim(tmp_path):
    out = tmp_path / "argv.json"
    odd = ["two words", "it's", '"double"', "$HOME", "*", "", "a\\b", "--flag=x y", "ünï"]
    code = "import json, sys; json.dump(sys.argv[2:], open(sys.argv[1], 'w'))"
    hooks = Hooks(after_restore=((PYTHON, "-c", code, str(out), *odd),))
    run_hooks("after_restore", hooks, context(tmp_path))
    assert json.loads(out.read_text()) == odd


def test_hooks_of_other_kinds_do_not_run(tmp_path):
    ran = tmp_path / "ran"
    hooks = Hooks(after_backup=(("touch", str(ran)),))
    run_hooks("before_backup", hooks, context(tmp_path))
    assert not ran.exists()
    with pytest.raises(ValueError):
        run_hooks("before_lunch", hooks, context(tmp_path))


# -- config ------------------------------------------------------------------------

BASE = """
tree = "/var/backups/cya"
sources = ["/home/me"]
encryption = { mode = "none" }
"""


def load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "config.toml"
    path.write_text(BASE + text)
    path.chmod(0o600)
    return config.load(path)


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.exit_code == 2
    return caught.value.one_line()


def test_hooks_config_becomes_argument_tuples(tmp_path):
    settings = load(tmp_path, """
[hooks]
before_backup = [["pg_dump", "-f", "/var/backups/db.sql"], ["sh", "-c", "sync; echo ok"]]
on_error = [["logger", "cya failed"]]
timeout = "90m"
""")
    hooks = settings.hooks
    assert hooks.before_backup == (("pg_dump", "-f", "/var/backups/db.sql"),
                                   ("sh", "-c", "sync; echo ok"))
    assert hooks.commands("on_error") == (("logger", "cya failed"),)
    assert hooks.after_backup == () and hooks.timeout == 90 * 60


def test_no_hooks_table_means_no_hooks_and_one_hour(tmp_path):
    hooks = load(tmp_path, "").hooks
    assert all(hooks.commands(kind) == () for kind in config.HOOK_KINDS)
    assert hooks.timeout == 3600


def test_hooks_config_errors_are_named_by_key_path(tmp_path):
    message = problems(tmp_path, """
[hooks]
before_backup = ["pg_dump -f /var/backups/db.sql"]
after_backup = "echo done"
on_error = [["logger", 3], []]
after_restore = [["", "x"]]
before_bakup = [["true"]]
timeout = "1 hour"
""")
    for expected in (
        "hooks.before_backup[0]: must be an argument list like",
        "not a string (for a shell, write [\"sh\", \"-c\", \"...\"])",
        "hooks.after_backup: must be a list of argument lists like",
        "hooks.on_error[0][1]: must be a string, not an integer",
        "hooks.on_error[1]: is empty; name a program",
        "hooks.after_restore[0][0]: must name a program",
        "hooks.before_bakup: unknown key",
        "hooks.timeout: '1 hour' is not a duration",
    ):
        assert expected in message, expected


@pytest.mark.parametrize("value", ['"0s"', '"1M"', "3600", '""'])
def test_a_timeout_must_be_a_fixed_positive_duration(tmp_path, value):
    assert "hooks.timeout:" in problems(tmp_path, f"[hooks]\ntimeout = {value}\n")


def test_hooks_must_be_a_table(tmp_path):
    assert "hooks: must be a table" in problems(tmp_path, 'hooks = "pg_dump"\n')


RUNNER = """
import sys
from pathlib import Path
from cya.config import Hooks
from cya.errors import CyaError
from cya.hooks import HookContext, run_hooks
marker = sys.argv[1]
hooks = Hooks(before_backup=(("sh", "-c", f"sleep {marker}5 & sleep {marker}6"),), timeout=60)
print("started", flush=True)
try:
    run_hooks("before_backup", hooks, HookContext(tree=Path("/t"), config=Path("/c")))
except CyaError as error:
    print(type(error).__name__, error.message, flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_cya_stops_the_hooks_whole_group(signum):
    """SIGTERM or Ctrl-C (SIGINT) sent to cya while a hook runs stops the hook and every
    process it started, and the run ends as Interrupted."""
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    process = subprocess.Popen([PYTHON, "-c", RUNNER, marker], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               preexec_fn=as_from_a_terminal)
    assert process.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 10
    while len(processes_with(f"sleep {marker}")) < 2:
        assert time.monotonic() < deadline, "the hook's processes did not start"
        time.sleep(0.05)
    process.send_signal(signum)
    out, _ = process.communicate(timeout=20)
    assert out.strip() == (f"Interrupted before_backup hook sh interrupted by signal "
                           f"{int(signum)}")
    assert processes_with(f"sleep {marker}") == []
