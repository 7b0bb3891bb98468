"""Lint, format and types under `make test` (issue 21): ruff and mypy with the configuration in
pyproject.toml ([tool.ruff], [tool.mypy]); every `# noqa` and `# type: ignore` says why."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SKIP_DIRS = {".venv", ".git", "build", "dist", "node_modules", "__pycache__"}

# A noqa names its codes, then a dash (or a colon) and why; a type-ignore names its codes, then a
# second comment saying why (the README's Development section shows both).
NOQA = re.compile(r"#\s*noqa\b")
NOQA_WITH_REASON = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+[-–—:]\s*\S")
IGNORE = re.compile(r"#\s*type:\s*ignore\b")
IGNORE_WITH_REASON = re.compile(r"#\s*type:\s*ignore\[[a-z-]+(\s*,\s*[a-z-]+)*\]\s*#\s*\S")


def _run(*command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def test_ruff_finds_nothing() -> None:
    result = _run(str(BIN / "ruff"), "check", "--no-fix", "--output-format", "concise", ".", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted_by_ruff() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", "--diff", ".", timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


# A cold run (no .mypy_cache) takes about 20 s of CPU; the cache makes a re-run a few seconds.
@pytest.mark.timeout(900)
def test_mypy_finds_nothing() -> None:
    result = _run(sys.executable, "-m", "mypy", "--no-error-summary", timeout=880)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def _python_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if not any(p in SKIP_DIRS or (p.startswith(".") and p != ".") for p in parts[:-1]):
            found.append(path)
    return sorted(found)


def _comments(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [(tok.start[0], tok.string) for tok in tokens if tok.type == tokenize.COMMENT]


def silenced_without_reason(path: Path, root: Path = ROOT) -> list[str]:
    """The `# noqa` and `# type: ignore` comments of ``path`` that do not name their codes and say why."""
    bad = []
    for line, text in _comments(path):
        if NOQA.search(text) and not NOQA_WITH_REASON.search(text):
            bad.append(f"{path.relative_to(root)}:{line}: {text.strip()}")
        # A type-ignore's reason is the comment after it: the tokenizer keeps both in one token.
        if IGNORE.search(text) and not IGNORE_WITH_REASON.search(text):
            bad.append(f"{path.relative_to(root)}:{line}: {text.strip()}")
    return bad


def test_every_noqa_and_type_ignore_says_why() -> None:
    bad = [found for path in _python_files() for found in silenced_without_reason(path)]
    assert bad == []


def test_the_reason_check_refuses_a_bare_noqa_and_a_bare_type_ignore(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os  # noqa: F401\n"
        "import re  # noqa\n"
        "x: int = 'a'  # type: ignore\n"
        "y: int = 'b'  # type: ignore[assignment]\n"
        "import sys  # noqa: F401 - re-exported\n"
        "z: int = 'c'  # type: ignore[assignment]  # a test of the check\n"
    )
    bad = silenced_without_reason(sample, tmp_path)
    assert [b.split(":")[1] for b in bad] == ["1", "2", "3", "4"]
