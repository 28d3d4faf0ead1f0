"""Issue 13, items 1-7: a fault gives one line, the right exit code and nothing left
behind, and every backup made before it still restores.

1. a tree on a read-only mount serves every reader; a damaged, missing or deleted
   catalog (or all of ``.cya``) is named with ``cya init --adopt``, which rebuilds it;
2. a full disk (a small tmpfs) says "disk full" and names the file system, ``trim``
   still runs there, and a restore into a full target fails at once;
3. a truncated volume fails its restore within a bound, naming the file;
4. impossible targets, absurd input, odd locales, damaged journals and damaged or
   foreign buckets give one line, never a traceback;
5. Ctrl-C (SIGINT to cya alone) undoes the backup at once, in cya's words;
6. what a ``kill -9``'d restore left is removed by the next cya command of any kind;
7. a ``cp -a`` copy of a tree backs up at the same time as the original.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import (
    CYA,
    Workspace,
    as_from_a_terminal,
    assert_one_line_error,
    change_source,
    clone,
    duplicity_children,
    restored_source,
    sh_program,
    snapshot,
    tree_state,
    with_backups,
)
from tests.s3.conftest import (  # noqa: F401 - fixtures for the recover cases of item 4
    CREDENTIALS,
    archive_workspace,
    moto_endpoint,
)

DAYS = ["2012-12-04", "2012-12-05", "2012-12-06"]
WEEK = "2000/2010/2012/2012-12/2012-12-02"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Three backups in one week; the source as it was at each."""
    return with_backups(tmp_path_factory.mktemp("made"), DAYS)


@pytest.fixture
def copy(made, tmp_path) -> tuple[Workspace, dict]:
    """A copy of the made workspace of the test's own (its config pointing at the copy)."""
    original, states = made
    return clone(original, tmp_path / "ws"), states


@pytest.fixture
def mounts():
    """``mount(*args, target)``: mount for the test; every mount is undone afterwards."""
    made: list[Path] = []

    def mount(*args: str, target: Path) -> None:
        subprocess.run(["mount", *args, str(target)], check=True, capture_output=True)
        if target not in made:
            made.append(target)

    yield mount
    for target in reversed(made):
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=True)


def small_fs(mount, path: Path, size: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", target=path)
    return path


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte with one filler file."""
    filler = directory / "filler"
    chunk = b"\0" * 2**20
    with open(filler, "ab", buffering=0) as out:
        for size in (2**20, 4096, 512, 1):
            while True:
                try:
                    out.write(chunk[:size])
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    return filler


def full_state(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``, cya's own state included (inode, size, mtime, mode)."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        state[str(path.relative_to(root))] = (info.st_ino, info.st_size, info.st_mtime_ns,
                                              info.st_mode)
    return state


def run_bounded(ws: Workspace, *args: str, timeout: float,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """Run cya in a session of its own; past ``timeout`` kill it and everything it
    started, and fail: cya must never hang."""
    process = subprocess.Popen([CYA, *args], env={**ws.env, **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"cya {' '.join(args)} still ran after {timeout} s (hung); "
                             f"output so far:\n{out}\n{err}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def leftovers(ws: Workspace, target: Path) -> list[str]:
    """What a restore or a backup may leave: staging beside or inside the target, work
    directories in the cache, runs in the tree's staging."""
    found = [str(p) for p in target.parent.glob("*cya-restore*")]
    if target.is_dir():
        found += [str(p) for p in target.rglob("*cya-restore*")]
    cache = ws.cache / "cya"
    if cache.is_dir():
        found += [str(p) for p in cache.glob("work-*")]
    staging = ws.tree / ".cya" / "staging"
    if staging.is_dir():
        found += [str(p) for p in staging.iterdir()]
    return found


def backed_up(ws: Workspace) -> Path:
    """The source path the workspace's earlier backups hold (a copy's are the original's)."""
    return ws.original_source or ws.source


def assert_restores(ws: Workspace, states: dict, tmp_path: Path, days=None) -> None:
    """Each backup (of ``days``, default all) restores the source exactly as it was."""
    for day in days or states:
        target = tmp_path / f"restored-{day}-{os.urandom(3).hex()}"
        ws.cya("restore", "--date", f"{day}T12:00", "--target", str(target))
        assert snapshot(restored_source(target, backed_up(ws))) == states[day], day
        shutil.rmtree(target)


def listed_backups(ws: Workspace, config: Path | None = None) -> dict[str, list[str]]:
    """level -> the backup times ``cya ls --json`` lists in its chain."""
    args = ("--config", str(config)) if config else ()
    listing = json.loads(ws.cya(*args, "ls", "--json").stdout)
    return {level["level"]: [b["time"] for b in level["backups"]]
            for level in listing["levels"]}


# 1. Read-only and damaged state ----------------------------------------------------

READERS = {
    "ls": ("ls", "--json"),
    "ls --date": ("ls", "--date", "2012-12-05", "--json"),
    "find": ("find", "journal.txt", "--json"),
    "timeline": ("timeline",),
    "restore --dry-run": ("restore", "--date", "2012-12-05", "--target", "{target}",
                          "--dry-run"),
}


def test_a_read_only_tree_serves_every_reader(copy, tmp_path, mounts):
    """README's drill restores from a copy of the tree: it must work read-only."""
    ws, states = copy
    dry_target = tmp_path / "never-made"

    def argv(args):
        return [a.replace("{target}", str(dry_target)) for a in args]

    expected = {name: ws.cya(*argv(args)).stdout for name, args in READERS.items()}
    before = full_state(ws.tree)
    read_only = tmp_path / "read-only-tree"
    read_only.mkdir()
    mounts("--bind", str(ws.tree), target=read_only)
    mounts("-o", "remount,ro,bind", target=read_only)
    config = tmp_path / "read-only.toml"
    config.write_text(ws.config.read_text().replace(str(ws.tree), str(read_only)))
    config.chmod(0o600)
    for name, args in READERS.items():
        result = ws.cya("--config", str(config), *argv(args), check=False)
        assert result.returncode == 0, (name, result.stderr)
        assert "Traceback" not in result.stderr, name
        assert result.stdout == expected[name].replace(str(ws.tree), str(read_only)), name
    target = tmp_path / "restored"
    result = ws.cya("--config", str(config), "restore", "--date", "2012-12-05",
                    "--target", str(target), check=False)
    assert result.returncode == 0, result.stderr
    assert snapshot(restored_source(target, backed_up(ws))) == states["2012-12-05"]
    assert not dry_target.exists()
    assert full_state(ws.tree) == before


def damage_catalog(ws: Workspace) -> None:
    catalog = ws.tree / ".cya" / "catalog.sqlite"
    catalog.write_bytes(os.urandom(catalog.stat().st_size))


def commands(target: Path) -> dict[str, tuple[str, ...]]:
    return {
        "ls": ("ls",),
        "find": ("find", "journal.txt"),
        "restore": ("restore", "--date", "2012-12-05", "--target", str(target)),
        "trim": ("trim",),
        "backup": ("--now", "2012-12-07T12:00", "backup"),
    }


def test_a_damaged_catalog_is_named_with_init_adopt(copy, tmp_path):
    ws, _ = copy
    damage_catalog(ws)
    before = tree_state(ws.tree)
    target = tmp_path / "restored"
    for name, args in commands(target).items():
        result = ws.cya(*args, check=False)
        assert_one_line_error(result, 1, "damaged", "cya init --adopt")
        assert tree_state(ws.tree) == before, name
        assert not target.exists(), name
        assert leftovers(ws, target) == [], name


def test_a_missing_catalog_is_not_recreated_and_init_adopt_rebuilds_it(copy, tmp_path):
    ws, states = copy
    listed = listed_backups(ws)
    catalog = ws.tree / ".cya" / "catalog.sqlite"
    catalog.unlink()
    before = tree_state(ws.tree)
    target = tmp_path / "restored"
    for name, args in {"ls": ("ls",), "restore --dry-run": ("restore", "--date", "2012-12-05",
                                                           "--target", str(target),
                                                           "--dry-run"),
                       "backup": ("--now", "2012-12-07T12:00", "backup")}.items():
        result = ws.cya(*args, check=False)
        assert_one_line_error(result, 1, "cya init --adopt")
        assert not catalog.exists(), f"{name} silently made a new catalog"
        assert tree_state(ws.tree) == before, name
    ws.cya("init", "--adopt")  # the config names the sources and the tree
    assert listed_backups(ws) == listed
    assert tree_state(ws.tree) == before
    assert_restores(ws, states, tmp_path)


def test_a_deleted_state_directory_is_named_and_init_adopt_rebuilds_it(copy, tmp_path):
    ws, states = copy
    listed = listed_backups(ws)
    shutil.rmtree(ws.tree / ".cya")
    before = tree_state(ws.tree)
    target = tmp_path / "restored"
    for name, args in {"ls": ("ls",), "status": ("status",),
                       "restore": ("restore", "--date", "2012-12-05", "--target", str(target)),
                       "backup": ("--now", "2012-12-07T12:00", "backup")}.items():
        result = ws.cya(*args, check=False)
        assert_one_line_error(result, 1, "cya init --adopt")
        assert not (ws.tree / ".cya").exists(), name
        assert not target.exists(), name
    ws.cya("init", "--adopt")
    assert tree_state(ws.tree) == before
    assert listed_backups(ws) == listed
    assert_restores(ws, states, tmp_path)
    change_source(ws.source, 3)
    ws.backup("2012-12-07T12:00")  # and the adopted tree takes new backups


# 2. Full disk ------------------------------------------------------------------------


def test_a_full_disk_says_so_and_trim_still_frees_space(tmp_path, mounts):
    fs = small_fs(mounts, tmp_path / "small-fs", "16m")
    ws = Workspace(tmp_path / "ws")
    ws.tree = fs / "tree"
    # a bucket no one listens at: a dry run must not need the network
    ws.init("--bucket", "cya-not-there", "--endpoint-url", "http://127.0.0.1:9")
    text = ws.config.read_text()
    # cadence "year": the levels trimmed here are not due off-site yet, so trim may free
    # them without the bucket (with the default cadence it keeps what the bucket lacks)
    ws.config.write_text(text.replace("duplicity_options = []",
                                      'duplicity_options = ["--volsize", "1"]')
                         .replace('cadence = "backup"', 'cadence = "year"'))
    states = {}
    # two backups in week 2012-12-02 (the second only in that week's chain), one in each
    # of the next two weeks: keep = 2 makes trim drop week 2012-12-02
    for number, day in enumerate(["2012-12-04", "2012-12-05", "2012-12-11", "2012-12-18"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00", "--no-trim", "--no-archive")
        states[day] = snapshot(ws.source)
    change_source(ws.source, 9)
    filler = fill(fs)
    before = tree_state(ws.tree)
    wrong = {}
    for args in [("--now", "2012-12-19T12:00", "backup"),
                 ("--now", "2012-12-19T12:00", "backup", "--dry-run"),
                 ("archive", "--dry-run")]:
        result = run_bounded(ws, *args, timeout=120)
        try:
            assert_one_line_error(result, 1, "disk full", str(fs))
            assert "cannot rollback" not in result.stderr
        except AssertionError as error:
            wrong[" ".join(args)] = (result.returncode, result.stdout, result.stderr, error)
        assert tree_state(ws.tree) == before, args
        assert list((ws.tree / ".cya" / "staging").iterdir()) == [], args
    # an interrupted backup is pending when the disk fills up again
    filler.unlink()
    crashed = ws.cya("--now", "2012-12-19T12:00", "backup", check=False,
                     env={"CYA_CRASH_AT": "after-seed"})
    assert crashed.returncode == 137, crashed.stderr
    assert (ws.tree / ".cya" / "journal.json").exists()
    fill(fs)
    free = os.statvfs(fs).f_bavail
    trimmed = run_bounded(ws, "trim", timeout=120)
    assert trimmed.returncode == 0, trimmed.stderr
    assert "Traceback" not in trimmed.stderr
    assert not (ws.tree / "2000/2010/2012/2012-12/2012-12-02").exists()
    assert os.statvfs(fs).f_bavail > free, "trim freed nothing"
    for day in ["2012-12-11", "2012-12-18"]:  # what the trim kept still restores
        target = tmp_path / f"restored-{day}"
        ws.cya("restore", "--date", f"{day}T12:00", "--target", str(target))
        assert snapshot(restored_source(target, ws.source)) == states[day]
    # checked last, so that one run shows every part that is wrong
    assert {args: code_out_err[:3] for args, code_out_err in wrong.items()} == {}, \
        "not one line saying the disk is full"


def test_a_restore_into_a_full_target_fails_at_once(copy, tmp_path, mounts):
    ws, states = copy
    fs = small_fs(mounts, tmp_path / "target-fs", "4m")
    fill(fs)
    target = fs / "restored"
    started = time.monotonic()
    result = run_bounded(ws, "restore", "--date", "2012-12-05", "--target", str(target),
                         timeout=60)
    assert time.monotonic() - started < 60
    assert_one_line_error(result, 1, "disk full", str(fs))
    assert str(ws.tree) not in result.stderr, "the target is full, not the tree"
    assert sorted(os.listdir(fs)) == ["filler"], "something was left beside the target"
    assert leftovers(ws, target) == []
    assert_restores(ws, states, tmp_path, ["2012-12-05"])


# 3. A truncated volume -------------------------------------------------------------


def test_a_truncated_volume_fails_its_restore_and_names_the_file(copy, tmp_path):
    ws, states = copy
    files = ws.tree / WEEK / "files"
    volume = next(files.glob("duplicity-inc.*.to.20121206T120000Z.vol1.difftar.gpg"))
    os.truncate(volume, volume.stat().st_size // 2)
    target = tmp_path / "restored"
    result = run_bounded(ws, "restore", "--date", "2012-12-06", "--target", str(target),
                         timeout=120)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert_one_line_error(result, 1)
    line = result.stderr.strip()
    assert volume.name in line or "damaged" in line, line
    assert not target.exists()
    assert leftovers(ws, target) == []
    # backups that do not need the damaged volume still restore
    assert_restores(ws, states, tmp_path, ["2012-12-04", "2012-12-05"])


# 4. Tracebacks -----------------------------------------------------------------------


def test_an_impossible_target_is_one_line(copy):
    ws, _ = copy
    result = ws.cya("restore", "--date", "2012-12-05", "--target", "/proc/x", check=False)
    assert result.returncode in (1, 2), result.stderr
    assert_one_line_error(result, result.returncode)


def test_toml_nested_5000_deep_is_a_config_error(tmp_path):
    ws = Workspace(tmp_path)
    ws.config.parent.mkdir(parents=True)
    ws.config.write_text('tree = "x"\nsources = ' + "[" * 5000 + "]" * 5000 + "\n")
    ws.config.chmod(0o600)
    assert_one_line_error(ws.cya("ls", check=False), 2)


@pytest.mark.parametrize("name, extra_env", [
    ("sourcé".encode(), {}),  # UTF-8 bytes; Python's UTF-8 mode under the C locale
    ("sourcé".encode(), {"PYTHONUTF8": "0"}),  # the same bytes, decoded as ASCII
    (b"sourc\xe9", {}),  # a Latin-1 name: not UTF-8 at all
], ids=["utf8-name", "utf8-name-ascii-python", "latin1-name"])
def test_init_under_the_c_locale_with_a_non_ascii_source(tmp_path, name, extra_env):
    ws = Workspace(tmp_path)
    source = os.path.join(os.fsencode(tmp_path), name)
    os.mkdir(source)
    env = {**ws.env, "LC_ALL": "C", "LANG": "C", **extra_env}
    result = subprocess.run([os.fsencode(CYA), b"init", b"--source", source,
                             b"--tree", os.fsencode(ws.tree)],
                            env=env, capture_output=True, timeout=60)
    result = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"))
    if result.returncode == 0:
        assert "Traceback" not in result.stderr
        assert ws.cya("status", check=False, env=env).returncode == 0
        return
    assert_one_line_error(result, result.returncode)
    assert not ws.tree.exists(), "a failed init left a tree"
    assert not ws.passphrase_file.exists(), "a failed init left a passphrase"
    assert not ws.config.exists()


def test_a_journal_holding_an_empty_object_is_one_line(copy, tmp_path):
    ws, states = copy
    (ws.tree / ".cya" / "journal.json").write_text("{}")
    before = tree_state(ws.tree)
    change_source(ws.source, 3)
    result = ws.backup("2012-12-07T12:00", check=False)
    assert "Traceback" not in result.stderr + result.stdout
    if result.returncode != 0:
        assert_one_line_error(result, 1, "journal")
        assert tree_state(ws.tree) == before
    assert_restores(ws, states, tmp_path, ["2012-12-06"])


def test_times_from_2100_are_refused(copy):
    ws, _ = copy
    before = tree_state(ws.tree)
    result = ws.backup("2100-01-02", check=False)
    assert_one_line_error(result, 2)
    assert "innermost" not in result.stderr
    assert tree_state(ws.tree) == before
    assert list((ws.tree / ".cya" / "staging").iterdir()) == []


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory, moto_endpoint):  # noqa: F811 - the imported fixture
    """A workspace whose year 2012 is archived in a bucket of the module's own."""
    import boto3

    os.environ.update(CREDENTIALS)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.bucket, client.endpoint = f"cya-recover-{os.urandom(4).hex()}", moto_endpoint
    client.create_bucket(Bucket=client.bucket)
    ws = archive_workspace(tmp_path_factory.mktemp("bucketed"), client)
    for number, day in enumerate(["2012-12-04", "2013-01-08"]):
        change_source(ws.source, number)
        ws.backup(f"{day}T12:00")
    assert client.list_objects_v2(Bucket=client.bucket, Prefix="manifests/")["KeyCount"]
    return ws, client


def recovering(ws: Workspace, base: Path) -> tuple[Workspace, tuple[str, ...]]:
    new = Workspace(base)
    new.env.update(CREDENTIALS)
    s3 = ws.s3
    return new, ("recover", "--bucket", s3.bucket, "--endpoint-url", s3.endpoint,
                 "--tree", str(new.tree), "--passphrase-file", str(ws.passphrase_file))


@pytest.fixture
def bucket(bucketed):
    ws, client = bucketed
    ws.s3 = client
    return ws, client


def test_recover_with_a_damaged_config_copy_is_one_line_and_reruns(bucket, tmp_path):
    ws, s3 = bucket
    new, args = recovering(ws, tmp_path / "new")
    original = s3.get_object(Bucket=s3.bucket, Key="system/config.toml.gpg")["Body"].read()
    s3.put_object(Bucket=s3.bucket, Key="system/config.toml.gpg", Body=os.urandom(300) + b"\xff")
    try:
        result = new.cya(*args, check=False)
        assert_one_line_error(result, 1)
        assert not (new.tree / ".cya").exists(), "a half-made tree blocks the rerun"
        assert not new.config.exists()
    finally:
        s3.put_object(Bucket=s3.bucket, Key="system/config.toml.gpg", Body=original)
    new.cya(*args)
    assert (new.tree / ".cya" / "catalog.sqlite").exists()


def test_recover_into_a_non_empty_directory_is_refused(bucket, tmp_path):
    ws, _ = bucket
    new, args = recovering(ws, tmp_path / "new")
    new.tree.mkdir()
    (new.tree / "mine.txt").write_text("mine\n")
    assert_one_line_error(new.cya(*args, check=False), 2)
    assert os.listdir(new.tree) == ["mine.txt"]
    assert not new.config.exists()


def test_recover_over_a_manifest_that_is_not_json_is_one_line(bucket, tmp_path):
    ws, s3 = bucket
    new, args = recovering(ws, tmp_path / "new")
    # without the catalog copy, recover reads the year indexes and the bags' manifests
    saved = {key: s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
             for key in ["system/catalog.sqlite", *[
                 item["Key"] for item in s3.list_objects_v2(
                     Bucket=s3.bucket, Prefix="manifests/")["Contents"]]]}
    s3.delete_object(Bucket=s3.bucket, Key="system/catalog.sqlite")
    for key in saved:
        if key.startswith("manifests/"):
            s3.put_object(Bucket=s3.bucket, Key=key, Body=b"{not json")
    try:
        result = new.cya(*args, check=False)
        assert_one_line_error(result, 1)
        assert not (new.tree / ".cya").exists()
        assert not new.config.exists()
    finally:
        for key, body in saved.items():
            s3.put_object(Bucket=s3.bucket, Key=key, Body=body)


# 5. Ctrl-C ---------------------------------------------------------------------------


def test_ctrl_c_undoes_the_backup_at_once(copy, tmp_path):
    ws, states = copy
    for number in range(4):  # enough that duplicity runs for several seconds
        (ws.source / f"random-{number}.bin").write_bytes(os.urandom(32 * 2**20))
    log = tmp_path / "cya.log"  # timestamped: where the time after SIGINT went
    run = subprocess.Popen([CYA, "-vv", "--log-file", str(log), "--now", "2012-12-07T12:00",
                            "backup"], env=ws.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True,
                           preexec_fn=as_from_a_terminal)
    try:
        writers = duplicity_children(run.pid)
        assert writers, "duplicity never started"
        time.sleep(1.0)
        assert run.poll() is None, "the backup ended before it could be interrupted"
        os.kill(run.pid, signal.SIGINT)  # cya alone, not its process group
        signalled = time.monotonic()
        try:
            _out, err = run.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("cya was still running 10 s after SIGINT; its log:\n"
                                 + log.read_text()) from None
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    print(f"cya ended {time.monotonic() - signalled:.1f} s after SIGINT")
    assert run.returncode == 1, err
    assert "Traceback" not in err and "Aborted!" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("cya: error: ")]
    assert len(errors) == 1, err
    assert "interrupted" in errors[0] and "undone" in errors[0], errors[0]
    assert list((ws.tree / ".cya" / "staging").iterdir()) == []
    assert not (ws.tree / ".cya" / "journal.json").exists()
    assert not any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)
                   for pid in writers), "duplicity outlived the interrupted run"
    for number in range(4):
        (ws.source / f"random-{number}.bin").unlink()
    assert_restores(ws, states, tmp_path, ["2012-12-06"])


def test_a_backup_started_with_nohup_and_ampersand_survives_hangup_and_ctrl_c(copy, tmp_path):
    """``nohup cya backup &`` from a script: the shell starts it with SIGINT ignored,
    nohup with SIGHUP ignored, so that a Ctrl-C meant for the foreground or closing the
    terminal leaves the backup running. cya keeps them ignored, even while duplicity
    runs (it does not catch and forward them): the backup completes and restores."""
    ws, states = copy
    for number in range(4):  # enough that duplicity runs for several seconds
        (ws.source / f"random-{number}.bin").write_bytes(os.urandom(32 * 2**20))
    out = tmp_path / "nohup.out"
    script = (f'nohup {shlex.quote(str(CYA))} --now 2012-12-07T12:00 backup '
              f'> {shlex.quote(str(out))} 2>&1 &\necho $!\nwait $!\necho "exit $?"\n')
    shell = subprocess.Popen(["sh", "-c", script], env=ws.env, stdout=subprocess.PIPE,
                             text=True, start_new_session=True, preexec_fn=as_from_a_terminal)
    try:
        pid = int(shell.stdout.readline())
        assert duplicity_children(pid), "duplicity never started"
        time.sleep(0.5)
        assert shell.poll() is None, "the backup ended before it could be signalled"
        for signum in (signal.SIGHUP, signal.SIGINT):
            os.kill(pid, signum)  # cya alone, as the terminal's hangup or a Ctrl-C
        rest, _ = shell.communicate(timeout=300)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.communicate()
    assert rest.strip() == "exit 0", out.read_text()
    assert "interrupted" not in out.read_text()
    assert "2012-12-07T12:00:00Z" in listed_backups(ws)[WEEK]
    target = tmp_path / "restored"
    ws.cya("restore", "--date", "2012-12-07T12:00", "--target", str(target))
    assert snapshot(restored_source(target, ws.source)) == snapshot(ws.source)
    assert_restores(ws, states, tmp_path, ["2012-12-06"])


def test_ctrl_c_while_gpg_s_agent_starts_stops_the_backup_before_duplicity(copy, tmp_path):
    """A signal that comes while cya waits on a helper (here ``gpgconf``, made slow) is
    not swallowed: the run stops there; duplicity never starts."""
    ws, states = copy
    real = shutil.which("gpgconf")
    assert real, "gpgconf is not installed"
    started = tmp_path / "gpgconf-started"
    wrappers = sh_program(tmp_path / "bin", "gpgconf",
                          f'touch {started}\nsleep 3\nexec {real} "$@"\n').parent
    env = {**ws.env, "PATH": f"{wrappers}{os.pathsep}{ws.env['PATH']}"}
    before = tree_state(ws.tree)
    run = subprocess.Popen([CYA, "-vv", "--now", "2012-12-07T12:00", "backup"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True, preexec_fn=as_from_a_terminal)
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started.exists(), "gpgconf never ran"
        os.kill(run.pid, signal.SIGINT)
        _out, err = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("cya: error: ")]
    assert len(errors) == 1 and "interrupted" in errors[0] and "undone" in errors[0], err
    assert not re.search(r"running: \S*duplicity (full|incremental) ", err), "duplicity ran"
    assert "Traceback" not in err
    assert tree_state(ws.tree) == before
    assert list((ws.tree / ".cya" / "staging").iterdir()) == []
    assert_restores(ws, states, tmp_path, ["2012-12-06"])


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"


# 6. Leftovers of a killed restore --------------------------------------------------


def test_the_next_command_cleans_what_a_killed_restore_left(copy, tmp_path):
    ws, _ = copy
    for number in range(2):  # enough that its restore runs for a few seconds
        (ws.source / f"random-{number}.bin").write_bytes(os.urandom(32 * 2**20))
    ws.backup("2012-12-07T12:00")
    target = tmp_path / "restored"
    run = subprocess.Popen([CYA, "restore", "--date", "2012-12-07T12:00", "--target",
                            str(target)], env=ws.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        readers = duplicity_children(run.pid)
        assert readers, "duplicity never started"
        time.sleep(0.5)
        assert run.poll() is None, "the restore ended before it could be killed"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{c}").exists() and "zombie" not in _state(c) for c in readers):
            assert time.monotonic() < deadline, "duplicity outlived the killed restore"
            time.sleep(0.05)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    left = (list(target.parent.glob(".*cya-restore*"))
            + (list(target.glob(".*cya-restore*")) if target.is_dir() else [])
            + list((ws.cache / "cya").glob("work-*")))
    assert left, "the killed restore left nothing: the test did not kill it in time"
    ws.cya("status")
    assert list(tmp_path.rglob("*cya-restore*")) == []
    assert list((ws.cache / "cya").glob("work-*")) == []


# 7. A copied tree ------------------------------------------------------------------


def test_a_copied_tree_backs_up_beside_the_original(copy, tmp_path):
    original, _ = copy
    twin = clone(original, tmp_path / "twin")
    twin.env["XDG_CACHE_HOME"] = original.env["XDG_CACHE_HOME"]  # one user, one cache
    states = {}
    for ws in (original, twin):
        change_source(ws.source, 3)
        (ws.source / "more.bin").write_bytes(os.urandom(4 * 2**20))
        states[ws.base] = snapshot(ws.source)
    runs = [subprocess.Popen([CYA, "--now", "2012-12-07T12:00", "backup"], env=ws.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for ws in (original, twin)]
    results = [(run.communicate(timeout=300), run.returncode) for run in runs]
    for (out, err), code in results:
        assert code == 0, (out, err)
    for ws in (original, twin):
        target = tmp_path / f"restored-{ws.base.name}"
        ws.cya("restore", "--date", "2012-12-07T12:00", "--target", str(target))
        assert snapshot(restored_source(target, ws.source)) == states[ws.base]

