"""R-BUDGET: the charter's own budget ideas start in the backlog without a command: the ideas
triage deployments file them on their first run (once each, by source key) and triage them
with the rest; ``charterflow budget seed`` stays the operator's explicit way."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from flows.ideas.deploy import deployments
from flows.ideas.triage import ideas_triage
from ledger.models import Idea
from rules.budget import CHARTER_IDEAS
from tests.support.membership import NOW


def test_r_budget_charter_ideas_enter_a_fresh_backlog_once(world):
    first = ideas_triage(post_digest=False, now=NOW, charter_ideas=True)
    assert len(first["charter_ideas"]) == len(CHARTER_IDEAS)
    assert first["needs_board"] == first["charter_ideas"]  # money: the Board decides (R-BOARD)
    again = ideas_triage(post_digest=False, now=NOW + timedelta(days=7), charter_ideas=True)
    assert again["charter_ideas"] == [] and again["triaged"] == []
    with world.ledger.read() as session:
        ideas = list(session.scalars(select(Idea).where(Idea.source == "charter")))
    assert sorted(i.title for i in ideas) == sorted(t for t, _ in CHARTER_IDEAS)
    assert {i.board_kind for i in ideas} == {"budget"}


def test_r_budget_the_triage_deployments_file_the_charter_ideas():
    triage = [d for d in deployments() if d.flow_name == "ideas-triage"]
    assert len(triage) == 2 and all(d.parameters.get("charter_ideas") is True for d in triage)
