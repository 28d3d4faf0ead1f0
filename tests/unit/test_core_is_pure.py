"""core/ imports nothing that touches the disk, the network, a process or the clock."""

import ast
from pathlib import Path

import cya.core

ALLOWED = {"__future__", "base64", "collections", "dataclasses", "datetime", "enum", "re",
           "typing", "dateutil", "math", "functools", "itertools", "bisect", "heapq", "fnmatch",
           "hashlib", "json", "cya"}  # no os, subprocess, sqlite3, boto3, click


def test_core_imports_only_pure_modules():
    core = Path(cya.core.__file__).parent
    modules = list(core.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED, f"{module.name} imports {name}"
                if top == "cya":
                    assert name.startswith("cya.core"), f"{module.name} imports {name}"
            if isinstance(node, ast.Attribute) and node.attr in ("now", "today", "utcnow"):
                raise AssertionError(f"{module.name} reads the clock")
