"""The suite's own rules (issue 21, point 6): shared fixtures and helpers live in tests/support
(pytest plugins and helper modules), never imported from another conftest; one ``free_port`` and
one loopback server; no test skips on the content of source code; the vendored spec copies are
exactly what scripts/refresh-vendored.py writes."""

from __future__ import annotations

import ast
import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
NET = TESTS / "support" / "net.py"


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(ROOT)), ast.parse(path.read_text(), filename=str(path)))
        for path in sorted(TESTS.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]


def test_no_module_imports_from_a_conftest():
    bad = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "conftest":
                bad.append(f"{name}:{node.lineno} from {'.' * node.level}{node.module}")
            elif isinstance(node, ast.Import):
                bad += [f"{name}:{node.lineno} import {a.name}" for a in node.names if a.name.endswith("conftest")]
    assert bad == []


def test_one_free_port_and_one_loopback_server():
    copies = []
    for name, tree in _modules():
        if name == str(NET.relative_to(ROOT)):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, (ast.FunctionDef, ast.ClassDef))
                and not node.name.startswith("test_")
                and ("free_port" in node.name or "closed_port" in node.name or node.name == "LoopbackServer")
            ):
                copies.append(f"{name}:{node.lineno} defines {node.name}")
            if isinstance(node, ast.Attribute) and node.attr == "Server" and ast.unparse(node.value) == "uvicorn":
                copies.append(f"{name}:{node.lineno} runs its own uvicorn.Server")
    assert copies == []


def _skips(tree: ast.Module) -> list[ast.AST]:
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("skipif", "skip", "xfail")):
            found.append(node)
    return found


def test_no_test_skips_on_the_content_of_source_code():
    """A regression in the code read would skip the test instead of failing it."""
    bad = [
        f"{name}:{node.lineno}"
        for name, tree in _modules()
        for node in _skips(tree)
        if "getsource" in ast.unparse(node) or "read_text" in ast.unparse(node)
    ]
    assert bad == []


def test_the_spec_copies_are_what_the_refresh_script_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("refresh_vendored", ROOT / "scripts" / "refresh-vendored.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    upstream = tmp_path / "shared"
    for source, copy in script.FILES.items():  # the upstream layout, from the copies themselves
        (upstream / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TESTS / "data" / copy, upstream / source)
    lines = script.refresh(upstream, target=tmp_path / "out")
    assert len(lines) == len(script.FILES) == 4
    for copy in script.FILES.values():
        assert (tmp_path / "out" / copy).read_bytes() == (TESTS / "data" / copy).read_bytes(), copy
