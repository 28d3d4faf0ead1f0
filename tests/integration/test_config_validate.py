"""Issue 11, item 5: ``cya config validate [--config F]`` checks the config without the
tree and without creating anything: every problem by key path, a TOML syntax error by
line and column (never a suggestion to overwrite the file), an unknown storage class,
files others can read named with the ``chmod`` that fixes them. Exit 0 valid, 2 not.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.helpers import Workspace


def everything(base: Path) -> set[str]:
    return {str(p.relative_to(base)) for p in base.rglob("*")}


def validate(ws: Workspace, *args: str, config: Path | None = None):
    extra = ("--config", str(config)) if config is not None else ()
    return ws.cya("config", "validate", *extra, *args, check=False)


def problems(result) -> list[str]:
    return [line.removeprefix("cya: problem: ") for line in result.stderr.splitlines()
            if line.startswith("cya: problem: ")]


def test_a_valid_config_without_its_tree_is_valid_and_nothing_is_created(ws):
    shutil.rmtree(ws.tree)
    before = everything(ws.base)
    result = validate(ws)
    assert result.returncode == 0, result.stderr
    assert f"{ws.config}: valid" in result.stdout
    assert f"note: the tree {ws.tree} does not exist yet" in result.stdout
    assert result.stderr == ""
    assert everything(ws.base) == before
    report = json.loads(validate(ws, "--json").stdout)
    assert report == {"version": 1, "config": str(ws.config), "valid": True, "problems": [],
                      "notes": [f"the tree {ws.tree} does not exist yet (cya init makes it; "
                                "or is its disk not mounted?)"]}


def test_a_toml_syntax_error_says_where_and_never_suggests_init_force(ws):
    text = ws.config.read_text().splitlines()
    text.insert(2, "week_start = sunday")  # a bare word is not a TOML value
    ws.config.write_text("\n".join(text) + "\n")
    result = validate(ws)
    assert result.returncode == 2
    [problem] = problems(result)
    assert problem.startswith(f"{ws.config}, line 3, column 14: TOML syntax error: ")
    assert "--force" not in result.stdout + result.stderr
    # every other command says the same file is broken and points here, not at init
    status = ws.cya("status", check=False)
    assert status.returncode == 2 and "--force" not in status.stderr
    assert "line 3, column 14" in status.stderr and "cya config validate" in status.stderr


def test_a_syntax_error_at_the_end_of_the_file_says_where(ws):
    ws.config.write_text(ws.config.read_text() + 'colour = "unterminated')  # no newline
    lines = ws.config.read_text().split("\n")
    result = validate(ws)
    assert result.returncode == 2
    [problem] = problems(result)
    assert f"line {len(lines)}, column {len(lines[-1]) + 1}: TOML syntax error: " \
        "Unterminated string (at the end of the file)" in problem


def test_every_key_problem_is_named_by_its_key_path(ws):
    ws.config.write_text("\n".join([
        f"tree = \"{ws.tree}\"",
        f"sources = [\"{ws.source}\"]",
        "week_start = \"tuesday\"",
        "colour = \"blue\"",
        "[encryption]",
        f"passphrase_file = \"{ws.passphrase_file}\"",
        "[archive]",
        "storage_class = \"FROZEN_SOLID\"",
        "keep_years = -1",
        "[trim]",
        "keep = \"two\"",
    ]) + "\n")
    result = validate(ws)
    assert result.returncode == 2
    found = problems(result)
    assert "colour: unknown key" in found
    assert any(p.startswith("week_start: must be one of sunday, monday") for p in found)
    assert any(p.startswith("archive.storage_class: must be one of DEEP_ARCHIVE")
               and "'FROZEN_SOLID'" in p for p in found)
    assert any(p.startswith("archive.keep_years: must be a whole number >= 0") for p in found)
    assert any(p.startswith("trim.keep: must be a whole number >= 1") for p in found)
    assert len(found) == 5, found
    assert f"cya: error: {ws.config} is not valid (5 problem(s))" in result.stderr
    report = json.loads(validate(ws, "--json").stdout)
    assert report["valid"] is False and report["problems"] == found


def test_files_others_can_read_are_named_with_the_chmod_that_fixes_them(ws):
    ws.config.chmod(0o644)
    ws.passphrase_file.chmod(0o640)
    result = validate(ws)
    assert result.returncode == 2
    assert problems(result) == [
        f"config file {ws.config} is readable or writable by others (mode 0644); "
        f"run: chmod 600 {ws.config}",
        f"encryption.passphrase_file: passphrase file {ws.passphrase_file} is readable or "
        f"writable by others (mode 0640); run: chmod 600 {ws.passphrase_file}",
    ]
    ws.config.chmod(0o600)
    ws.passphrase_file.chmod(0o600)
    assert validate(ws).returncode == 0


def test_a_missing_or_empty_passphrase_file_is_a_problem(ws):
    ws.passphrase_file.write_text("")
    assert problems(validate(ws)) == [
        f"encryption.passphrase_file: passphrase file {ws.passphrase_file} is empty; "
        "restore it from your safe copy"]
    ws.passphrase_file.unlink()
    assert problems(validate(ws)) == [
        f"encryption.passphrase_file: passphrase file {ws.passphrase_file} does not exist"]


def test_config_option_names_the_file_and_a_missing_one_is_invalid(ws, tmp_path):
    other = tmp_path / "elsewhere.toml"
    shutil.copyfile(ws.config, other)
    os.chmod(other, 0o600)
    ws.config.write_text("broken = [\n")
    result = validate(ws, config=other)
    assert result.returncode == 0 and f"{other}: valid" in result.stdout
    # the global option works too
    assert ws.cya("--config", str(other), "config", "validate").returncode == 0
    missing = validate(ws, config=tmp_path / "nope.toml")
    assert missing.returncode == 2
    assert problems(missing) == [f"config file {tmp_path / 'nope.toml'} does not exist"]


def test_a_tree_without_cya_state_is_a_note(ws, tmp_path):
    shutil.rmtree(ws.tree / ".cya")
    result = validate(ws)
    assert result.returncode == 0
    assert f"note: the tree {ws.tree} exists but holds no cya state yet" in result.stdout
    assert not (ws.tree / ".cya").exists()
