"""Issue 20, point 6: a Matrix trial end to end, with no change to ``flows/`` for Matrix.

A member proposes a Matrix trial with Discord's ``/propose``; the Board approves it with its
Slack button; the ledger lists Matrix as ``trial`` and it is served; two WG members become its
admins through the roles plan/apply, under the admin invariants judged over three platforms once
the first admin is granted; a member links their Matrix account (``!link`` pushed by Synapse, a
code sent to their Discord account, ``!link <code>``); an application is voted with a Discord
button, a Forum poll vote and two Matrix poll answers pushed by Synapse, merged into one tally;
the trial's end asks the WG; the Board's retirement revokes the roles on Matrix first.

Real parts: a Synapse on loopback whose appservice registration points at the real gateway
(``board``'s, with the plugin's hook mounted from its entry point), the Discord, Forum and Slack
sandboxes, the session's Prefect server, a SQLite ledger. Events are stored by the gateway and
handled with ``flows.inbox.handle_event``, as the task worker does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from matrix_served import PushingHomeserver, bot_connector, pushed, pushing_synapse, say_in, seed
from sqlalchemy import select

from charterflow_matrix import payloads
from charterflow_matrix.client import q
from charterflow_matrix.connector import MatrixConnector
from connectors.base import Role
from flows import inbox
from flows.board.decision import record_decision
from flows.board.escalation import board_escalation, handle_board_proposal
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.ballot import close_due_ballots
from flows.platforms import Platforms, served_by_ledger, use
from flows.platforms_state import platform_states, platforms_trial_ends
from flows.roles.plan import apply_plan, build_plan
from ledger import repo
from ledger.models import Application, ApplicationStatus, Ballot, BallotOutcome, Identity, InboxEvent
from tests.support.board import Board, without_endorsement
from tests.support.membership import CONFIRM_SECRET, MEMBERS, NOW, apply_proven, discord_event, press_vote

pytestmark = pytest.mark.timeout(900)
ADMINS = ("avery_quill", "cleo_marsh")  # Forum admin and Discord admin today: neither on all three
SEED = {
    "members": [*MEMBERS, "quinn_harbor"],
    "rooms": {"general": [*MEMBERS, "quinn_harbor"], "working-group": list(MEMBERS), "moderators": []},
}


@pytest.fixture
def trial(
    board: Board, pushing_homeserver: PushingHomeserver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """The Board's world plus a Synapse pushing to the board's gateway, and its connector."""
    with pushing_synapse(pushing_homeserver, board.gateway_url, monkeypatch) as creds:
        users = seed(creds, SEED)
        matrix = bot_connector(creds)
        yield {"creds": creds, "users": users, "matrix": matrix}
        matrix.close()


def say(t: dict[str, Any], who: str, room: str, body: str) -> str:
    """``who`` sends ``body`` in ``room`` with their own token; the event id."""
    return say_in(t, who, t["matrix"].room_id(room), body)


def test_a_matrix_trial_end_to_end(board: Board, trial: dict[str, Any]) -> None:
    world, matrix = board.world, trial["matrix"]
    charter = world.platforms.charter
    assert served_by_ledger(["discourse", "discord", "matrix"], charter) == ["discourse", "discord"]

    # 1. Proposed in Discord (/propose), straight to the Board (no endorsement vote here).
    ends = (NOW + timedelta(days=90)).date()
    with without_endorsement(world):
        event = discord_event(
            world,
            kind="propose",
            route="board-proposal",
            payload={
                "user": "felix_oakes",
                "options": {
                    "kind": "trial-platform",
                    "title": "Trial Matrix",
                    "summary": "A Matrix space beside Discord.",
                    "platform": "matrix",
                    "trial_ends": ends.isoformat(),
                },
            },
        )
        with world.ledger.read() as session:
            row = session.get(InboxEvent, event)
        filed = handle_board_proposal(ledger=world.ledger, event=row, now=NOW)
    assert filed.startswith("proposal:"), filed

    # 2. The Board approves it in Slack: Matrix is a trial platform, and served.
    [message] = board.board_messages()
    decision = board.deliver(board.click(user="U0WREN001", ts=message["ts"], action="approve"))
    assert inbox.handle_event(world.ledger, decision).endswith(":approved")
    ctx = context(NOW, ledger=world.ledger, platforms=world.platforms)
    assert platform_states(ctx)["matrix"].state == "trial"
    assert served_by_ledger(["discourse", "discord", "matrix"], charter) == ["discourse", "discord", "matrix"]
    connectors = {name: world.platforms.space(name).connector for name in world.platforms.names()}
    platforms = Platforms.build(
        charter=charter,
        confirm_secret=CONFIRM_SECRET,
        gateway_url=world.platforms.gateway_url,
        dsf_members=world.platforms.dsf_members,
        mailer=world.platforms.mailer,
        **connectors,
        matrix=matrix,
    )
    with use(ledger=world.ledger, platforms=platforms):
        world.platforms = platforms
        _admins_under_three_platforms(world, matrix)
        _a_member_links_their_account(world, trial)
        _an_application_voted_across_three_platforms(world, trial)
        _the_trial_end_asks_the_wg(world, ends)
        _retirement_revokes_the_roles_first(board, matrix)


def _admins_under_three_platforms(world: Any, matrix: MatrixConnector) -> None:
    at = NOW + timedelta(minutes=5)
    with world.ledger.transaction() as session:
        for handle in ADMINS:
            person = repo.get_person(session, handle)
            user = matrix.find_user(handle)
            repo.add_identity(
                session, person, platform="matrix", actor="operator", external_id=user.id, username=user.username, at=at
            )
            repo.set_desired_platform_role(
                session,
                person,
                platform="matrix",
                role="admin",
                desired=True,
                actor="operator",
                decision_ref="test:trial-admins",
                at=at,
            )
    ctx = context(at, ledger=world.ledger, platforms=world.platforms)
    assert "matrix" not in ctx.charter.platforms  # no admin yet: the trial does not count
    shown = build_plan(ctx)
    assert shown.allowed, shown.plan.decision.reason
    result = apply_plan(ctx, shown, decision_ref="test:trial-admins", actor="operator")
    assert not result["failed"], result
    assert {u.username for u in matrix.list_holders(Role.admin())} >= set(ADMINS)
    later = context(at + timedelta(minutes=1), ledger=world.ledger, platforms=world.platforms)
    assert later.charter.platforms == ("discourse", "discord", "matrix")  # R-PLATFORM: counts now
    # R-ADMIN-1 over three platforms: the Forum admin may not also become Discord's admin now.
    refused = build_plan(later, extra=[("avery_quill", "discord", "admin", True)])
    assert not refused.allowed and "R-ADMIN-1" in refused.plan.decision.ruling
    assert platforms_trial_ends(now=at + timedelta(minutes=2))["first_admin_recorded"] == ["matrix"]


def _a_member_links_their_account(world: Any, t: dict[str, Any]) -> None:
    # The handlers run on the real clock, as the task worker does (NOW is it, rounded).
    for body, refused in (
        ("!link myspace felix_oakes", "refused:R-APP-2:bad-request"),
        ("!link discord quinn_harbor", "refused:R-APP-2:not-a-member"),
        ("!link " + "f" * 500, "refused:R-APP-2:no-request"),
    ):
        row = pushed(world, say(t, "felix_oakes", "general", body))
        assert inbox.handle_event(world.ledger, row.id) == refused, body
    start = pushed(world, say(t, "felix_oakes", "general", "!link discord felix_oakes"))
    assert (start.route, start.kind) == (inbox.Route.LINK, "link")
    result = inbox.handle_event(world.ledger, start.id)
    assert result.startswith("link:pending:person:"), result
    [dm] = [
        m["content"]
        for m in world.discord_state()["messages"]
        if "!link " in (m.get("content") or "") and "matrix" in m["content"]
    ]
    code = re.search(r"!link ([0-9a-f]{10})", dm).group(1)
    wrong = pushed(world, say(t, "felix_oakes", "general", "!link 0000000000"))
    assert inbox.handle_event(world.ledger, wrong.id) == "refused:R-APP-2:wrong-code"
    # Someone else cannot use the code: no request from their account.
    other = pushed(world, say(t, "quinn_harbor", "general", f"!link {code}"))
    assert inbox.handle_event(world.ledger, other.id) == "refused:R-APP-2:no-request"
    done = pushed(world, say(t, "felix_oakes", "general", f"!link {code}"))
    assert inbox.handle_event(world.ledger, done.id) == f"identity:person:{world.people['felix_oakes']}:matrix"
    assert inbox.handle_event(world.ledger, done.id) == "already-processed"  # a redelivered run
    again = pushed(world, say(t, "felix_oakes", "general", "!link discord felix_oakes"))
    assert inbox.handle_event(world.ledger, again.id) == "refused:R-APP-3:already-linked"
    with world.ledger.read() as session:
        linked = {
            (i.platform, i.username)
            for i in session.scalars(select(Identity).where(Identity.person_id == world.people["felix_oakes"]))
        }
    assert ("matrix", "felix_oakes") in {(str(p), u) for p, u in linked}


def _poll_answer(t: dict[str, Any], who: str, ballot_id: str) -> str:
    room, _, start = ballot_id.partition("/")
    with t["users"].client(t["creds"].base_url, who) as client:
        return (
            client.put(
                f"/_matrix/client/v3/rooms/{q(room)}/send/m.poll.response/{payloads.txn_id(None)}",
                json=payloads.poll_response(start_event=start, answer="a1"),
            )
            .raise_for_status()
            .json()["event_id"]
        )


def _an_application_voted_across_three_platforms(world: Any, t: dict[str, Any]) -> None:
    at = NOW + timedelta(minutes=20)
    result = apply_proven(world, "quinn_harbor", now=at)
    app_id = result["application"]
    with world.ledger.read() as session:
        ballot_id = session.get(Application, app_id).ballot_id
    where = ballots.refs(context(at, ledger=world.ledger, platforms=world.platforms), ballot_id)
    assert set(where) == {"discourse", "discord", "matrix"}
    # One yes on Discord, one on the Forum (read by the closer), two Matrix poll answers pushed.
    assert press_vote(world, where["discord"], "dario_fenwick", 0, now=at) == f"ballot:{ballot_id}:vote"
    world.discourse_sb.cast_vote(
        world.discourse_url, ballots.platform_ballot("discourse", where["discourse"]), voter="hana_pike", option_index=0
    )
    close_due_ballots(now=at + timedelta(minutes=1))
    for voter in ADMINS:
        row = pushed(world, _poll_answer(t, voter, where["matrix"]["ballot_id"]))
        assert (row.route, row.kind) == (inbox.Route.VOTE, "ballot_vote")
        assert inbox.handle_event(world.ledger, row.id) == f"ballot:{ballot_id}:vote"
    with world.ledger.read() as session:
        ballot = session.get(Ballot, ballot_id)
        assert ballot.outcome == BallotOutcome.PASSED  # 4 yes of 7 decided it (R-VOTE-EARLY)
        assert {str(v.source_platform) for v in repo.ballot_votes_history(session, ballot)} == {
            "discord",
            "discourse",
            "matrix",
        }
        assert session.get(Application, app_id).status == ApplicationStatus.APPROVED
    # The poll itself holds the two answers (read back as the closer reads them).
    votes = t["matrix"].read_votes(ballots.platform_ballot("matrix", where["matrix"]))
    assert {v.voter.username for v in votes} == set(ADMINS)


def _the_trial_end_asks_the_wg(world: Any, ends: Any) -> None:
    after = NOW.replace(year=ends.year, month=ends.month, day=ends.day) + timedelta(days=1)
    assert platforms_trial_ends(now=after)["asked"] == ["matrix"]
    assert f"the trial of matrix ended on {ends}" in json.dumps(world.discord_state())
    assert platforms_trial_ends(now=after + timedelta(days=1))["asked"] == []


def _retirement_revokes_the_roles_first(board: Board, matrix: MatrixConnector) -> None:
    world = board.world
    at = NOW + timedelta(minutes=40)
    with without_endorsement(world):
        filed = board_escalation(
            title="End the Matrix trial",
            summary="The WG stays on Discord.",
            kind="retire-platform",
            platform="matrix",
            now=at,
        )
    record_decision(proposal_id=filed["proposal"], decision="approved", decided_by="wren_halloway", now=at)
    ctx = context(at, ledger=world.ledger, platforms=world.platforms)
    assert platform_states(ctx)["matrix"].state == "retired"
    assert not {u.username for u in matrix.list_holders(Role.admin())} & set(ADMINS)
    assert "matrix" not in ctx.charter.platforms
