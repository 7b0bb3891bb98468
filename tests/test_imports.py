"""Imports inside functions (issue 21, point 4): only where they must be (start-up time, an optional
plugin, a cycle that cannot be broken), and each says why with ``# lazy: <reason>`` on its line or
on a comment line directly above a run of imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = (
    *(
        "rules",
        "ledger",
        "connectors",
        "flows",
        "gateway",
        "charterflow",
        "plugins/charterflow-matrix/charterflow_matrix",
    ),
    *("tests", "bench", "plugins/charterflow-matrix/tests"),
)
MARK = "# lazy:"


def unexplained(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line`` of each import inside a function of ``path`` that gives no ``# lazy:`` reason."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    inner: dict[int, ast.stmt] = {}
    for fn in ast.walk(ast.parse(text)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    inner[node.lineno] = node
    covered = {n for node in inner.values() for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    bad = []
    for lineno in sorted(inner):
        if MARK in lines[lineno - 1]:
            continue
        above = lineno - 1
        while above in covered:
            above -= 1
        if above >= 1 and lines[above - 1].strip().startswith(MARK):
            continue
        bad.append(f"{path.relative_to(root)}:{lineno}")
    return bad


def _files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_import_inside_a_function_says_why(folder: str) -> None:
    bad = [found for path in _files(folder) for found in unexplained(path)]
    assert bad == [], f"{len(bad)} function-level imports without '{MARK} <reason>': move them up or say why"


def test_the_check_takes_a_reason_on_the_line_or_above_a_run(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "def a():\n"
        "    import json\n"
        "    import re  # lazy: start-up: a test\n"
        "    # lazy: optional: a test\n"
        "    import csv\n"
        "    from typing import (\n"
        "        Any,\n"
        "    )\n"
        "    x = 1\n"
        "    import sys\n"
        "    def b():\n"
        "        import glob\n"
    )
    assert unexplained(sample, tmp_path) == ["sample.py:3", "sample.py:11", "sample.py:13"]
