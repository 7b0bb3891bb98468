"""`charterflow reports draft`: the three texts and the charts written locally, nothing stored
or posted; a draft the privacy check refuses is not written; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from charterflow.cli import app as cli
from flows.platforms import Platforms, use
from flows.reports.charts import PNG_MAGIC
from ledger import repo
from ledger.db import Ledger
from ledger.models import AuditEntry
from rules import default_charter
from rules.reports import Quarter
from tests.support.reports import MODERATION_TARGETS, QUARTER

GOLDEN = Path(__file__).parent / "golden"


def test_draft_writes_the_texts_and_charts(seeded: Ledger, tmp_path: Path):
    with seeded.read() as s:
        entries = s.scalar(select(func.count()).select_from(AuditEntry))
    out = tmp_path / "draft"
    with use(ledger=seeded, platforms=Platforms.build(charter=default_charter())):
        result = CliRunner().invoke(cli, ["reports", "draft", "--quarter", QUARTER, "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "2025Q2-ideas.png",
        "2025Q2-membership.png",
        "2025Q2-moderation.png",
        "board.json",
        "discord.txt",
        "forum.md",
    ]
    assert (out / "forum.md").read_text() == (GOLDEN / "forum.md").read_text()
    assert json.loads((out / "board.json").read_text())["blocks"][0]["type"] == "header"
    for png in out.glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 1000
    # Nothing stored: a local draft is not a decision.
    with seeded.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == entries


def test_a_refused_draft_is_not_written(seeded: Ledger, tmp_path: Path):
    with seeded.transaction() as s:
        idea = repo.add_idea(
            s,
            title=f"Thanks {MODERATION_TARGETS[0]}",
            source="operator",
            actor="operator",
            at=Quarter.parse(QUARTER).start,
        )
        repo.set_idea_status(s, idea, "done", actor="operator", at=Quarter.parse(QUARTER).start)
    out = tmp_path / "draft"
    with use(ledger=seeded, platforms=Platforms.build(charter=default_charter())):
        result = CliRunner().invoke(cli, ["reports", "draft", "-q", QUARTER, "-o", str(out)])
        bad = CliRunner().invoke(cli, ["reports", "draft", "-q", "next quarter"])
    assert result.exit_code == 1 and not out.exists()
    assert "refused by R-PRIVACY: the forum text names a person a moderator acted on" in result.output
    assert MODERATION_TARGETS[0] not in result.output
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: quarter: 'next quarter' is not a quarter like 2026Q3"
