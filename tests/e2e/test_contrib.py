"""The files in contrib/ work as written: the cron.d file is one cron would read and its
line is silent exactly when it should be, systemd accepts the units and rates the
service's sandbox, and the IAM policies parse and keep the daily credentials small."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import sh_program

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"
CRON_FILE = CONTRIB / "cron.d" / "cya"
SERVICE = CONTRIB / "cya-backup.service"
TIMER = CONTRIB / "cya-backup.timer"
DAILY = CONTRIB / "iam-policy-daily.json"
ADMIN = CONTRIB / "iam-policy-admin.json"
CYA = Path(sys.executable).parent / "cya"
MAX_EXPOSURE = 4.0

# ---------------------------------------------------------------------------- cron

# One field of a cron time spec: *, n, a-b, lists and steps, or a month/day name.
CRON_FIELD = re.compile(r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?"
                        r"(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$")
ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def cron_job() -> tuple[list[str], str, str]:
    """The one job line of the cron.d file: its five time fields, user and command."""
    jobs = [line for line in CRON_FILE.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#") and not ENV_LINE.match(line)]
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 6)
    assert len(fields) == 7, f"want 5 time fields, a user and a command: {jobs[0]!r}"
    return fields[:5], fields[5], fields[6]


def cron_command(text: str) -> str:
    """What cron hands to sh: up to the first unescaped %, with each \\% made a %."""
    command, escaped = [], False
    for char in text:
        if escaped:
            command.append(char if char == "%" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            break  # the rest would be the job's stdin
        else:
            command.append(char)
    if escaped:
        command.append("\\")
    return "".join(command)


def run_cron_line(tmp_path: Path, exit_status: int, prints: str) -> tuple[int, str, Path]:
    """Run the job's command as cron would (sh -c, cron's PATH line with a fake cya
    first), the fake printing ``prints`` to stderr and exiting ``exit_status``."""
    fake = tmp_path / "bin"
    calls = tmp_path / "calls"
    sh_program(fake, "cya", f'echo "$*" >> {calls}\n'
                            f"printf '%s' '{prints}' >&2\nexit {exit_status}\n")
    _, _, command = cron_job()
    result = subprocess.run(["sh", "-c", cron_command(command)],
                            env={"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path),
                                 "SHELL": "/bin/sh"},
                            capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout + result.stderr, calls


def test_cron_file_has_a_name_cron_reads_and_the_old_one_is_gone():
    assert CRON_FILE.is_file()
    # Debian's cron reads /etc/cron.d names made of letters, digits, _ and - only
    assert re.fullmatch(r"[A-Za-z0-9_-]+", CRON_FILE.name)
    assert not (CONTRIB / "cya.cron").exists()
    assert CRON_FILE.read_text().endswith("\n")  # cron ignores an unterminated last line


def test_cron_line_parses_into_time_user_and_command():
    times, user, command = cron_job()
    for field in times:
        assert CRON_FIELD.match(field), field
    assert user == "root"
    assert "cya -q backup" in command
    # an unescaped % would end the command early (and feed the rest to its stdin)
    assert cron_command(command) == command.replace("\\%", "%"), command
    env = dict(line.split("=", 1) for line in CRON_FILE.read_text().splitlines()
               if ENV_LINE.match(line))
    assert env.get("CYA_CONFIG") and env.get("PATH"), env


def test_cron_line_is_silent_when_another_run_holds_the_lock(tmp_path):
    status, output, calls = run_cron_line(tmp_path, 75, "cya: another run holds the lock")
    assert output == ""
    assert status == 0
    assert calls.read_text().split() == ["-q", "backup"]


def test_cron_line_is_silent_when_the_backup_succeeds_quietly(tmp_path):
    status, output, _ = run_cron_line(tmp_path, 0, "")
    assert (status, output) == (0, "")


def test_cron_line_prints_a_failure_so_cron_mails_it(tmp_path):
    status, output, _ = run_cron_line(tmp_path, 1, "cya: error: 100% of the disk is full")
    assert output == "cya: error: 100% of the disk is full\n"
    assert status == 1


def test_cron_line_says_something_when_a_failure_printed_nothing(tmp_path):
    status, output, _ = run_cron_line(tmp_path, 2, "")
    assert "exit status 2" in output and status == 2


# ------------------------------------------------------------------------- systemd

def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: install Debian's systemd package (.ci/run does)"
    return tool


def unit_settings(path: Path) -> list[tuple[str, str]]:
    """Every Key=value line of a unit file, in order (keys may repeat)."""
    settings = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.append((key.strip(), value.strip()))
    return settings


def test_service_has_the_settings_an_operator_edits_and_expects():
    settings = unit_settings(SERVICE)
    values = {}
    for key, value in settings:
        values.setdefault(key, []).append(value)
    text = SERVICE.read_text()
    assert re.search(r"^#\s*User=", text, re.M), "User= guidance in a comment"
    assert any(v.startswith("CYA_CONFIG=") for v in values["Environment"])
    assert values["ExecStart"] == ["/opt/cya/bin/cya -q backup"]
    assert values["SuccessExitStatus"] == ["75"]
    assert values["TimeoutStartSec"]
    assert values["IOSchedulingClass"] == ["best-effort"]
    assert values["IOSchedulingPriority"] == ["7"]
    assert values["ProtectSystem"] == ["strict"]
    assert values["ProtectHome"] == ["read-only"]
    assert values["CapabilityBoundingSet"] == ["CAP_DAC_READ_SEARCH"]
    assert set(values["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET",
                                                                  "AF_INET6"}
    assert values["SystemCallFilter"][0] == "@system-service"
    # the tree must stay writable; the comment says the user edits it
    assert values["ReadWritePaths"] == ["/var/backups/cya"]
    assert re.search(r"EDIT.*\n(#.*\n)*ReadWritePaths=", text)
    assert "/dev/fuse" in text  # how to relax the sandbox for sshfs sources


def test_systemd_accepts_the_service_and_the_timer(tmp_path):
    """``systemd-analyze verify`` on copies whose ExecStart is this checkout's cya (the
    shipped path, /opt/cya/bin/cya, need not exist here)."""
    tool = systemd_analyze()
    assert CYA.exists(), CYA
    service = tmp_path / SERVICE.name
    service.write_text(SERVICE.read_text().replace("ExecStart=/opt/cya/bin/cya",
                                                   f"ExecStart={CYA}"))
    shutil.copy(TIMER, tmp_path / TIMER.name)
    result = subprocess.run([tool, "verify", "--man=no", str(service), str(tmp_path / TIMER.name)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stdout + result.stderr


def test_service_sandbox_exposure_is_at_most_four(tmp_path):
    tool = systemd_analyze()
    result = subprocess.run([tool, "security", "--offline=true", str(SERVICE)],
                            capture_output=True, text=True, timeout=120)
    found = re.search(r"Overall exposure level for cya-backup\.service: (\d+\.\d+)",
                      result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


# ----------------------------------------------------------------------------- IAM

def statements(path: Path) -> list[dict]:
    policy = json.loads(path.read_text())
    assert policy["Version"] == "2012-10-17"
    return policy["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowed_actions(path: Path) -> set[str]:
    return {action for s in statements(path) if s["Effect"] == "Allow"
            for action in as_list(s["Action"])}


@pytest.mark.parametrize("path", [DAILY, ADMIN], ids=["daily", "admin"])
def test_policy_is_scoped_to_the_bucket_and_the_prefix(path):
    for statement in statements(path):
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in as_list(statement["Action"]):
            assert action.startswith("s3:") and "*" not in action, action
        for resource in as_list(statement["Resource"]):
            assert resource.startswith("arn:aws:s3:::BUCKET"), resource
            # objects only under the prefix; the bucket itself for bucket-level actions
            assert resource in ("arn:aws:s3:::BUCKET", "arn:aws:s3:::BUCKET/PREFIX/*"), resource
    assert not (CONTRIB / "iam-policy.json").exists()


def test_daily_policy_can_archive_but_not_delete_or_administer():
    actions = allowed_actions(DAILY)
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads"} <= actions
    for action in actions:
        assert not action.startswith("s3:Delete"), action
        assert not re.fullmatch(r"s3:Put\w*(Configuration|Policy|Acl|Block|Retention|Versioning)"
                                r"|s3:PutBucket\w*|s3:Bypass\w*|s3:RestoreObject", action), action
    listing = [s for s in statements(DAILY) if s["Action"] == "s3:ListBucket"]
    prefixed = [s for s in listing
                if s.get("Condition", {}).get("StringLike", {}).get("s3:prefix") == ["PREFIX/*"]]
    assert prefixed, "listing limited to the prefix"
    for statement in listing:  # no unconditioned listing of the whole bucket
        assert statement.get("Condition"), statement


def test_admin_policy_covers_setup_prune_and_restore():
    assert {"s3:PutBucketPublicAccessBlock", "s3:GetLifecycleConfiguration",
            "s3:PutLifecycleConfiguration", "s3:GetBucketVersioning",
            "s3:GetBucketObjectLockConfiguration", "s3:DeleteObject", "s3:RestoreObject",
            "s3:GetObject", "s3:ListBucket"} <= allowed_actions(ADMIN)
    assert "s3:BypassGovernanceRetention" not in allowed_actions(ADMIN)
