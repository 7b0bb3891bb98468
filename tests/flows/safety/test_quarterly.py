"""R-SAFE-3 in the quarterly reports: the public texts give counts only, the Board's report the
response times per platform; never a name."""

from __future__ import annotations

from datetime import timedelta

from flows.reports.render import render_report
from ledger import reports as store
from ledger import safety as queue_ledger
from ledger.db import Ledger
from rules.reports import Quarter
from tests.support.reports import QUARTER

CHARTS = {"membership": "m.png", "moderation": "mod.png", "ideas": "i.png"}


def test_r_safe_3_quarterly_reports_give_counts_publicly_and_times_to_the_board(empty_ledger: Ledger) -> None:
    q = Quarter.parse(QUARTER)
    start = q.start + timedelta(days=3)
    with empty_ledger.transaction() as session:
        for i, (platform, outcome, hours) in enumerate(
            (("discord", "warned", 2), ("discord", "no_action", 6), ("discourse", "removed_content", 10))
        ):
            report, _ = queue_ledger.create(
                session,
                source_key=f"k{i}",
                at=start,
                actor="operator",
                fields={
                    "via": platform,
                    "platform": platform,
                    "reporter_key": f"{platform}:9{i}",
                    "target_kind": "message",
                    "reporter_username": "cleo_marsh",
                    "target_username": "rowan_vale",
                    "content": "rude words",
                },
            )
            queue_ledger.claim(session, report.id, by="bram_tolliver", at=start + timedelta(hours=1), actor="operator")
            queue_ledger.resolve(
                session,
                report.id,
                outcome=outcome,
                by="bram_tolliver",
                at=start + timedelta(hours=hours),
                actor="operator",
            )
        facts = store.gather_facts(session, q)
    assert facts["safety"]["public"]["reports"] == 3
    texts = render_report(facts, charts=CHARTS)
    assert "Community reports: 3 (no action 1, warned 1, removed content 1)" in texts.forum
    board = texts.board_json()
    assert "Community reports" in board and "first response 1.0 / 1.0 h; resolution 4.0 / 5.6 h" in board
    for text in (texts.forum, texts.discord, board):
        assert "rowan_vale" not in text and "cleo_marsh" not in text and "bram_tolliver" not in text
        assert "rude words" not in text
