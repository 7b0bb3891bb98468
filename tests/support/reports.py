"""The report and meeting tests' worlds (a pytest plugin: ``tests/conftest.py`` registers it).

``seeded``: a migrated SQLite ledger holding one busy quarter, 2025Q2, at fixed dates (the
golden files depend on nothing else): members who joined, renewed, left, lapsed or were removed
(with a removal ballot and its votes), an application with answers, ideas in and out, moderator
and admin role changes, moderation actions on both platforms, and proposals open and decided.
``report_world``: the membership tests' seeded working group (Forum and Discord sandboxes, the
session's Prefect server) plus the Slack sandbox, for the approval path end to end.
All people are invented.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.slack.sandbox import SlackSandbox
from flows.board.common import use_slack
from ledger import repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import BallotKind, MembershipStatus, TermOrigin
from ledger.models_moderation import ModerationAction
from tests.support.membership import NOW, World, want_role
from tests.support.net import LoopbackServer

QUARTER = "2025Q2"
BOARD_CHANNEL = "C0BOARD01"

# Strings that must never reach a public output (R-PRIVACY): checked by the tests.
ANSWER = "I have kept the Lisbon meetup chat friendly for three years and enjoy helping newcomers."
EXPERIENCE = "Moderator of a regional Python user group forum since 2021."
REMOVAL_SUBJECT = "teodor_wick"
REMOVAL_VOTERS = ("linnea_ravel", "oskar_brandt", "mira_castellan")
MODERATION_TARGETS = ("spam_bot_4411", "grumpy_gadfly")


def at(text: str) -> datetime:
    """A fixed UTC moment from ``YYYY-MM-DD[ HH:MM]``."""
    fmt = "%Y-%m-%d %H:%M" if " " in text else "%Y-%m-%d"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def _member(session: Any, handle: str, *, start: str, discord: str | None = None) -> Any:
    person = repo.create_person(session, handle=handle, actor="operator", at=at(start))
    if discord:
        repo.add_identity(
            session, person, platform="discord", actor="operator", external_id=discord, username=handle, at=at(start)
        )
    repo.start_membership(
        session,
        person,
        actor="operator",
        starts_at=at(start),
        ends_at=at(start) + timedelta(days=365),
        origin=TermOrigin.IMPORT,
        at=at(start),
    )
    return person


def seed_quarter(ledger: Ledger) -> dict[str, int]:
    """The busy quarter 2025Q2 (see the module docstring); returns handle → person id."""
    people: dict[str, Any] = {}
    with ledger.transaction() as s:
        for handle in ("linnea_ravel", "oskar_brandt", "mira_castellan", REMOVAL_SUBJECT, "elsa_quenby", "piet_morrow"):
            people[handle] = _member(s, handle, start="2024-06-20")
        # Joined in the quarter, through an application with answers (private).
        newcomer = repo.create_person(s, handle="saoirse_lund", actor="operator", at=at("2025-04-01"))
        repo.submit_application(
            s,
            newcomer,
            actor="operator",
            source_platform="discourse",
            motivation=ANSWER,
            experience=EXPERIENCE,
            at=at("2025-04-01"),
        )
        repo.start_membership(
            s, newcomer, actor="operator", starts_at=at("2025-04-15"), ends_at=at("2026-04-15"), at=at("2025-04-15")
        )
        people["saoirse_lund"] = newcomer
        # Renewed (opt-in) in May; left in June; lapsed in April.
        repo.renew(
            s,
            repo.open_membership(s, people["linnea_ravel"]),
            actor="operator",
            opted_in_at=at("2025-05-20"),
            source="discord",
            term_days=365,
            at=at("2025-05-20"),
        )
        repo.end_membership(
            s,
            repo.open_membership(s, people["piet_morrow"]),
            status=MembershipStatus.LEFT,
            actor="operator",
            at=at("2025-06-10"),
        )
        repo.end_membership(
            s,
            repo.open_membership(s, people["elsa_quenby"]),
            status=MembershipStatus.LAPSED,
            actor="operator",
            at=at("2025-04-03"),
        )
        # A removal ballot: who voted and on whom are private.
        ballot = repo.open_ballot(
            s,
            kind=BallotKind.REMOVAL,
            subject_ref="person:removal",
            electorate=[people[h] for h in REMOVAL_VOTERS],
            opens_at=at("2025-05-01"),
            closes_at=at("2025-05-15"),
            rule_params={},
            actor="operator",
            subject_person=people[REMOVAL_SUBJECT],
            at=at("2025-05-01"),
        )
        for handle in REMOVAL_VOTERS:
            repo.cast_vote(
                s,
                ballot,
                people[handle],
                choice="yes",
                source_platform="discourse",
                actor="operator",
                at=at("2025-05-02"),
            )
        repo.close_ballot(
            s,
            ballot,
            outcome="passed",
            ruling="R-REMOVE",
            tally={"yes": 3, "no": 0},
            actor="operator",
            at=at("2025-05-15"),
        )
        repo.end_membership(
            s,
            repo.open_membership(s, people[REMOVAL_SUBJECT]),
            status=MembershipStatus.REMOVED,
            actor="operator",
            ballot_id=ballot.id,
            at=at("2025-05-15"),
        )
        # Ideas: two done, one declined, one still new; one done in the quarter before.
        old = repo.add_idea(
            s,
            title="Pin the code of conduct in every Discord channel",
            source="discord",
            actor="operator",
            platform="discord",
            at=at("2025-02-01"),
        )
        repo.set_idea_status(s, old, "done", actor="operator", at=at("2025-03-20"))
        a = repo.add_idea(
            s,
            title="A welcome category on the Forum",
            source="discourse",
            actor="operator",
            platform="discourse",
            source_url="https://forum.example.org/t/welcome-category/321",
            at=at("2025-04-05"),
        )
        repo.set_idea_status(s, a, "accepted", actor="operator", at=at("2025-04-10"))
        repo.set_idea_status(s, a, "done", actor="operator", at=at("2025-05-28"))
        b = repo.add_idea(
            s,
            title="Slow mode in #help during conference weeks",
            source="discord",
            actor="operator",
            platform="discord",
            at=at("2025-05-03"),
        )
        repo.set_idea_status(s, b, "done", actor="operator", at=at("2025-06-12"))
        c = repo.add_idea(
            s, title="Move everything to a mailing list", source="operator", actor="operator", at=at("2025-06-01")
        )
        repo.set_idea_status(s, c, "declined", actor="operator", at=at("2025-06-02"))
        repo.add_idea(s, title="Monthly office hours", source="discourse", actor="operator", at=at("2025-06-20"))
        # Role changes: a Discord moderator granted, a Forum admin revoked.
        want_role(
            s, people["mira_castellan"], "discord", "moderator", decision_ref="roles-change:1", at=at("2025-05-05")
        )
        want_role(s, people["oskar_brandt"], "discourse", "admin", decision_ref="roster", at=at("2025-01-05"))
        want_role(
            s,
            people["oskar_brandt"],
            "discourse",
            "admin",
            desired=False,
            decision_ref="roles-change:2",
            at=at("2025-06-15"),
        )
        # Proposals: one waiting for the Board, one decided (not listed).
        waiting = repo.create_proposal(
            s, kind="trial-platform", title="Try a Matrix bridge", actor="operator", at=at("2025-05-02")
        )
        repo.escalate_proposal(
            s,
            waiting,
            actor="operator",
            endorsement_ballot_id=None,
            escalation_ref="C0BOARD01:1.1",
            at=at("2025-05-10"),
        )
        decided = repo.create_proposal(s, kind="budget", title="Sticker budget", actor="operator", at=at("2025-04-02"))
        repo.escalate_proposal(
            s,
            decided,
            actor="operator",
            endorsement_ballot_id=None,
            escalation_ref="C0BOARD01:2.2",
            at=at("2025-04-03"),
        )
        repo.record_board_decision(
            s,
            decided,
            decision="approved",
            decided_by="U0WREN001",
            source="slack",
            actor="operator",
            at=at("2025-04-20"),
        )
        # Moderation actions, as the moderation log stores them.
        rows = [
            ("discord", "d1", "ban", MODERATION_TARGETS[0], "2025-04-08 10:00"),
            ("discord", "d2", "timeout", MODERATION_TARGETS[1], "2025-05-11 12:00"),
            ("discord", "d3", "timeout", MODERATION_TARGETS[1], "2025-05-19 18:30"),
            ("discourse", "f1", "suspend", MODERATION_TARGETS[1], "2025-06-02 09:15"),
            ("discourse", "f0", "silence", "someone_earlier", "2025-03-30 09:00"),
        ]
        for platform, entry, action, target, when in rows:
            s.add(
                ModerationAction(
                    platform=platform,
                    entry_id=entry,
                    action=action,
                    platform_action=action,
                    target_username=target,
                    moderator_username="a_moderator",
                    occurred_at=at(when),
                    recorded_at=at(when),
                    raw={},
                )
            )
    return {h: p.id for h, p in people.items()}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger holding the busy quarter 2025Q2."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(ledger)
    seed_quarter(ledger)
    yield ledger
    ledger.dispose()


@pytest.fixture
def empty_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A migrated, empty ledger."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade(ledger)
    yield ledger
    ledger.dispose()


@dataclass
class ReportWorld:
    """The seeded WG with Slack."""

    world: World
    slack_url: str
    slack: Any

    def board_messages(self) -> list[dict[str, Any]]:
        state = httpx.get(f"{self.slack_url}/_sandbox/state", timeout=10).json()
        return list(state["messages"].get(BOARD_CHANNEL, []))


@pytest.fixture
def report_world(world: World) -> Iterator[ReportWorld]:
    """The membership world plus the Slack sandbox installed as the process's Slack."""
    sandbox = SlackSandbox(time_factor=0.02)
    with LoopbackServer(sandbox.app) as server:
        slack = sandbox.connect(server.url)
        with use_slack(slack):
            yield ReportWorld(world=world, slack_url=server.url, slack=slack)


__all__ = [
    "ANSWER",
    "BOARD_CHANNEL",
    "EXPERIENCE",
    "MODERATION_TARGETS",
    "NOW",
    "QUARTER",
    "REMOVAL_SUBJECT",
    "REMOVAL_VOTERS",
    "ReportWorld",
    "at",
    "seed_quarter",
]
