"""The layers import one way (DESIGN.md): rules and connectors never import each other."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"rules", "connectors", "ledger", "flows", "gateway", "charterflow"}

# package -> the packages of ours it may import (besides itself)
ALLOWED = {
    "rules": set(),
    "connectors": set(),
    "ledger": {"rules", "connectors"},  # connectors.errors only: see test below
    "flows": {"rules", "connectors", "ledger", "charterflow"},
    "gateway": {"rules", "connectors", "ledger", "flows", "charterflow"},
    "charterflow": OURS,
}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_its_layer_may(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imports(path):
            top = name.split(".")[0]
            if top in OURS and top != package and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if package == "ledger" and top == "connectors" and name != "connectors.errors":
                bad.append(f"{path.relative_to(ROOT)} imports {name} (only connectors.errors)")
    assert bad == []


def test_every_top_level_package_states_its_contract():
    missing = [p for p in sorted(OURS) if not (ROOT / p / "README.md").is_file()]
    assert missing == []


# The import contracts ([tool.importlinter] in pyproject.toml), kept by import-linter: they see
# imports inside functions too, and `ignore_imports` lists today's exceptions, so a new one fails.
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # --no-cache: grimp would otherwise write .import_linter_cache into the working tree.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("rules/__init__.py", "import connectors.errors", "rules and connectors never import each other"),
        ("ledger/db.py", "from flows import inbox", "charterflow > gateway > flows"),
        ("ledger/db.py", "from connectors import base", "the ledger does not talk to platforms"),
        ("flows/__init__.py", "import charterflow.cli", "charterflow > gateway > flows"),
        ("flows/ideas/status.py", "from flows.guides import help", "capability packages do not import one another"),
    ],
)
def test_import_contracts_refuse_a_new_exception(tmp_path, module, line, contract):
    """A copy of the packages with one import planted, checked with the same contracts."""
    for package in OURS:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module
    # Inside a function: the contracts see those too.
    target.write_text(target.read_text() + f"\n\ndef _planted():\n    {line}\n")
    result = _lint_imports(tmp_path, PYTHONPATH=str(tmp_path))  # the copy before the installed tree
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
    assert module.removesuffix(".py").removesuffix("/__init__").replace("/", ".") in result.stdout


# A platform's package under connectors/ is one with a connector module (email is a mailer, the
# sandbox kit is shared); flows reach platforms only through connectors.base's Protocols.
PLATFORM_PACKAGES = sorted(p.name for p in (ROOT / "connectors").iterdir() if (p / "connector.py").is_file())
# The Board's Slack channel: its Block Kit builders and action parsers are still imported by
# the Board flows and the report's Board message (issue 20: the Slack side stays the Board's).
BOARD_CHANNEL = {
    "flows/board/common.py": {"connectors.slack.blocks", "connectors.slack.connector"},  # split_ref
    "flows/board/decision.py": {"connectors.slack.blocks", "connectors.slack.inbound"},
    "flows/inbox.py": {"connectors.slack.blocks"},
    "flows/inbox_routing.py": {"connectors.slack.blocks"},
    "flows/reports/render.py": {"connectors.slack.blocks"},
    "flows/wg_roles/board.py": {"connectors.slack.blocks", "connectors.slack.inbound"},
}


def test_there_are_platform_packages_to_guard():
    assert {"discord", "discourse", "slack"} <= set(PLATFORM_PACKAGES)


def test_flows_import_no_concrete_connector():
    bad = []
    for path in sorted((ROOT / "flows").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for name in imports(path):
            parts = name.split(".")
            if (
                parts[0] == "connectors"
                and len(parts) > 1
                and parts[1] in PLATFORM_PACKAGES
                and name not in BOARD_CHANNEL.get(rel, set())
            ):
                bad.append(f"{rel} imports {name}")
    assert bad == []


def test_flows_do_not_probe_connectors():
    # "does this platform do X" is an isinstance check against a Protocol, never getattr/hasattr.
    bad = []
    for path in sorted((ROOT / "flows").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
            ):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.id}")
    assert bad == []
