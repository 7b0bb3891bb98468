"""The layers import one way (DESIGN.md): rules and connectors never import each other."""

from __future__ import annotations

import ast
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
