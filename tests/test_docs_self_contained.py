"""The README and the docs stand on their own: nothing points outside the repository, and the
project's own account of the charter (docs/charter.md) covers every ruling the code cites."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rules import RULINGS

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("../shared", "shared/charter", "shared/DESIGN", "shared/specs")


def _documents() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found += sorted(p for p in ROOT.glob("*/README.md") if p.parts[-2] not in {".venv", "node_modules"})
    found += sorted(ROOT.glob("*/*/README.md"))
    return [p for p in found if ".venv" not in p.parts and p.is_file()]


def test_the_documents_are_found():
    names = {str(p.relative_to(ROOT)) for p in _documents()}
    assert {
        "README.md",
        "docs/charter.md",
        "docs/design.md",
        "rules/README.md",
        "connectors/discord/README.md",
    } <= names


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_points_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    hits = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for needle in OUTSIDE
        for m in re.finditer(re.escape(needle), text)
    ]
    assert hits == []


def test_readme_links_the_charter_and_design_notes():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/charter.md)" in readme and "(docs/design.md)" in readme


def test_charter_doc_explains_every_ruling():
    text = (ROOT / "docs" / "charter.md").read_text(encoding="utf-8")
    headed = set(re.findall(r"^#+ .*?\b(R-[A-Z]+(?:-[A-Z0-9]+)*)\b", text, flags=re.M))
    assert sorted(set(RULINGS) - headed) == []
    assert sorted(headed - set(RULINGS)) == []
