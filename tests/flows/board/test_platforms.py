"""Approved platforms as data (R-PLATFORM, issue 20) end to end: the Board's approval of a trial,
a migration or a retirement changes the ledger's platform list, a trial's end asks the WG once, a
retirement revokes roles first; against the Slack, Discord and Discourse sandboxes on 127.0.0.1,
the real gateway and the session's Prefect server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from charterflow.platforms_cli import app as platforms_cli
from connectors.registry import community_connectors
from flows import inbox
from flows.board.common import InvalidProposal, validate_proposal
from flows.board.decision import handle_board_decision, record_decision
from flows.board.escalation import board_escalation, handle_board_proposal
from flows.kit import context
from flows.platforms_state import follow_up, platform_states, platforms_trial_ends
from flows.roles.change import roles_change
from flows.roles.plan import build_plan, format_plan
from ledger import audit, repo
from ledger import platforms as ledger_platforms
from ledger.models import AuditEntry, InboxEvent, Proposal
from rules import default_charter
from tests.support.board import WREN, Board
from tests.support.cli import cli_with
from tests.support.membership import NOW, World, discord_event

DISCORD_ADMINS = ("cleo_marsh", "dario_fenwick")


@contextmanager
def no_endorsement(world: World) -> Iterator[None]:
    """A charter without the WG's endorsement vote: a proposal goes straight to the Board."""
    charter = world.platforms.charter
    world.platforms.charter = charter.model_copy(
        update={
            "ballots": charter.ballots.model_copy(
                update={"endorsement": charter.ballots.endorsement.model_copy(update={"required": False})}
            )
        }
    )
    try:
        yield
    finally:
        world.platforms.charter = charter


def file(board: Board, *, at=NOW, **fields) -> int:
    with no_endorsement(board.world):
        result = board_escalation(
            title=fields.pop("title", "A platform proposal"),
            summary=fields.pop("summary", "Discussed in the WG."),
            now=at,
            **fields,
        )
    assert result["status"] == "escalated", result
    return result["proposal"]


def approve(board: Board, proposal_id: int, *, at=NOW) -> dict:
    return record_decision(proposal_id=proposal_id, decision="approved", decided_by="wren_halloway", now=at)


def states(world: World) -> dict[str, tuple]:
    found = platform_states(context(NOW, ledger=world.ledger, platforms=world.platforms))
    return {p: (s.state, s.trial_ends_at) for p, s in found.items()}


def actions(world: World, *prefixes: str) -> list[tuple[int, str, str]]:
    with world.ledger.read() as session:
        return [
            (e.seq, e.action, e.subject)
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
            if e.action.startswith(prefixes)
        ]


def wg_says(world: World, needle: str) -> dict[str, bool]:
    return {
        "discord": needle in json.dumps(world.discord_state()),
        "discourse": needle in json.dumps(world.discourse_state()),
    }


def discord_role_holders(world: World, role_name: str) -> set[str]:
    return {m["username"] for m in world.discord_state()["members"] if role_name in m["roles"]}


# --------------------------------------------------------------------------------------------
# A trial approved in Slack


def test_board_approves_a_matrix_trial_in_slack(board: Board):
    world = board.world
    ends = (NOW + timedelta(days=60)).date()
    pid = file(
        board,
        kind="trial-platform",
        title="Trial Matrix for the community",
        platform="Matrix",
        trial_ends=ends.isoformat(),
        proposed_by="avery_quill",
    )
    [message] = board.board_messages()
    assert f"Platform: matrix on trial until {ends}" in json.dumps(message["blocks"])
    assert states(world) == {"discourse": ("approved", None), "discord": ("approved", None)}

    request = board.click(user=WREN, ts=message["ts"], action="approve")
    event = board.deliver(request)
    assert inbox.handle_event(world.ledger, event) == f"proposal:{pid}:approved"
    found = states(world)
    assert found["matrix"][0] == "trial" and found["matrix"][1].date() == ends
    assert wg_says(world, f"matrix: trial until {ends}") == {"discord": True, "discourse": True}

    with world.ledger.read() as session:
        [row] = [r for r in ledger_platforms.history(session) if r.platform == "matrix"]
        assert (row.decided_by, row.proposal_id) == ("board:slack", pid)
        assert WREN not in json.dumps(
            [e.payload_json for e in session.scalars(select(AuditEntry).where(AuditEntry.subject == "platform:matrix"))]
        )
        told = repo._effect_subject(f"platform:state-wg:{pid}:discord")
        announced = repo._effect_subject(f"board:decision:{event}:0:wg:discord")
    # Recorded before announced: the list changes before the decision and the change are told.
    seq = {subject: s for s, _a, subject in actions(world, "platform.", "effect.")}
    assert seq["platform:matrix"] < seq[announced] < seq[told]
    assert [a for _s, a, _subj in actions(world, "platform.")] == [
        "platform.seeded",
        "platform.seeded",
        "platform.state",
    ]

    # Matrix has no connector here and no admin yet: the admin invariants still judge two.
    ctx = context(NOW, ledger=world.ledger, platforms=world.platforms)
    assert ctx.charter.platforms == ("discourse", "discord")

    # The same click again, and the handler run again: nothing changes twice.
    before = (board.slack_writes(), world.writes(), actions(world, "platform."))
    assert board.deliver(request) == event
    with world.ledger.read() as session:
        row = session.get(InboxEvent, event)

    assert handle_board_decision(ledger=world.ledger, event=row) == f"proposal:{pid}:approved"
    assert (board.slack_writes(), world.writes(), actions(world, "platform.")) == before

    # `charterflow platforms`: matrix listed, and whether its connector (the plugin) is installed.

    out = CliRunner().invoke(cli_with(platforms_cli), ["platforms", "--history"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith("matrix"))
    installed = "matrix" in community_connectors()
    assert "trial" in line and str(ends) in line and ("not installed" in line) is not installed
    assert "counts" not in line  # no admin granted yet
    assert "matrix trial until" in out.output and "by board:slack" in out.output
    data = json.loads(CliRunner().invoke(cli_with(platforms_cli), ["platforms", "--json"]).output)
    assert {p["platform"]: p["admin_invariants"] for p in data["platforms"]} == {
        "discourse": True,
        "discord": True,
        "matrix": False,
    }


def test_a_trial_counts_for_the_admin_invariants_once_its_first_admin_is_granted(board: Board):
    """A trial platform the ledger lists but no connector serves here: once its first admin
    is granted it counts (R-ADMIN-1/2 over three platforms) and the roles plan reports it as
    not reached, never a crash."""
    world = board.world
    approve(board, file(board, kind="trial-platform", platform="matrix"))
    with world.ledger.transaction() as session:
        assert (
            ledger_platforms.record_first_admin(
                session, platform="matrix", first_admin_at=NOW, actor="operator", charter_platforms=(), at=NOW
            )
            is not None
        )
    ctx = context(NOW + timedelta(minutes=1), ledger=world.ledger, platforms=world.platforms)
    assert ctx.charter.platforms == ("discourse", "discord", "matrix")
    shown = build_plan(ctx, tolerate_unreachable=True)
    assert shown.unreached == {"matrix": "not configured here"}
    assert "unknown for matrix (not reached: not configured here)" in format_plan(shown)
    before = context(NOW - timedelta(minutes=1), ledger=world.ledger, platforms=world.platforms)
    assert before.charter.platforms == ("discourse", "discord")


# --------------------------------------------------------------------------------------------
# The trial's end


def test_trial_end_asks_the_wg_once_then_keep_trialling_asks_again_at_the_new_end(board: Board):
    world = board.world
    end = NOW + timedelta(days=10)
    approve(board, file(board, kind="trial-platform", platform="matrix", trial_ends=end.date().isoformat()))
    assert platforms_trial_ends(now=end - timedelta(days=1))["asked"] == []
    after = end + timedelta(days=1)
    assert platforms_trial_ends(now=after)["asked"] == ["matrix"]
    question = f"the trial of matrix ended on {end.date()}"
    assert wg_says(world, question) == {"discord": True, "discourse": True}
    assert "kind:migrate-platform platform:matrix" in json.dumps(world.discord_state())
    before = world.writes()
    assert platforms_trial_ends(now=after + timedelta(days=1))["asked"] == []
    assert world.writes() == before, "asked once per trial end"

    # The WG proposes to keep trialling; the Board approves: a later end, asked again then.
    new_end = (after + timedelta(days=30)).date()
    approve(
        board,
        file(
            board,
            kind="trial-platform",
            platform="matrix",
            title="Keep trialling",
            trial_ends=new_end.isoformat(),
            at=after,
        ),
        at=after,
    )
    assert states(world)["matrix"][1].date() == new_end
    assert platforms_trial_ends(now=after + timedelta(days=2))["asked"] == []
    assert platforms_trial_ends(now=after + timedelta(days=31))["asked"] == ["matrix"]
    assert [a for _s, a, _subj in actions(world, "platform.trial-ended")] == [
        "platform.trial-ended",
        "platform.trial-ended",
    ]


# --------------------------------------------------------------------------------------------
# Migration and retirement: roles first


def _want_discord_admins(world: World) -> None:
    with world.ledger.transaction() as session:
        for handle in DISCORD_ADMINS:
            repo.set_desired_platform_role(
                session,
                repo.get_person(session, handle),
                platform="discord",
                role="admin",
                desired=True,
                actor="operator",
                decision_ref="test",
                at=NOW,
            )


def test_retiring_discord_revokes_every_managed_role_first(board: Board):
    world = board.world
    _want_discord_admins(world)
    assert set(DISCORD_ADMINS) <= discord_role_holders(world, "admin")
    assert len(discord_role_holders(world, "wg-member")) >= 7
    pid = file(board, kind="retire-platform", title="Retire the Discord server", platform="discord")
    approve(board, pid)

    assert states(world)["discord"][0] == "retired"
    assert discord_role_holders(world, "admin").isdisjoint(DISCORD_ADMINS)
    assert discord_role_holders(world, "wg-member").isdisjoint(world.people)
    # Discourse untouched.
    forum_admins = {u["username"] for u in world.discourse_state()["users"] if u.get("admin")}
    assert {"avery_quill", "bram_tolliver"} <= forum_admins
    order = [(a, subj) for _s, a, subj in actions(world, "platform.", "roles.apply")]
    assert (
        order.index(("platform.state", "platform:discord"))
        < next(i for i, (a, _subj) in enumerate(order) if a == "roles.apply")
        < max(i for i, (a, subj) in enumerate(order) if subj == "platform:discord")
    )
    assert wg_says(world, "discord is retired")["discourse"]
    with world.ledger.read() as session:
        [applied] = [e for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "roles.apply"))]
        payload = json.loads(applied.payload_json)
        # Nine revocations go past the removal limit (5): the Board's approval is the override.
        assert len(payload["changes"]) == 9 and "approved by the Board" in payload["override_reason"]
        assert audit.verify(session).ok

    # Only the Forum is approved now: its admins are judged alone (R-ADMIN-1 needs two).
    ctx = context(NOW, ledger=world.ledger, platforms=world.platforms)
    assert ctx.charter.platforms == ("discourse",)
    # Again: nothing more happens.
    before = (world.writes(), actions(world, "platform."))
    assert follow_up(ctx, proposal_id=pid)["retired"]["discord"]["status"] == "retired"
    assert (world.writes(), actions(world, "platform.")) == before


def test_migration_approves_matrix_and_retires_discord_after_its_roles(board: Board):
    world = board.world
    approve(board, file(board, kind="trial-platform", platform="matrix"))
    pid = file(
        board, kind="migrate-platform", title="Move from Discord to Matrix", platform="matrix", replaces="discord"
    )
    [_, message] = board.board_messages()
    assert "matrix becomes approved; discord is retired" in json.dumps(message["blocks"])
    approve(board, pid)
    found = states(world)
    assert (found["matrix"][0], found["discord"][0]) == ("approved", "retired")
    assert discord_role_holders(world, "wg-member").isdisjoint(world.people)
    # Admins the ledger does not manage there are not changed, and the WG is told who they are.
    assert {"cleo_marsh", "dario_fenwick"} <= discord_role_holders(world, "admin")
    assert wg_says(world, "cleo_marsh (admin)")["discourse"]
    with world.ledger.read() as session:
        steps = [(r.platform, r.state) for r in ledger_platforms.history(session)]
    assert steps[-3:] == [("matrix", "approved"), ("discord", "retiring"), ("discord", "retired")]
    # Matrix has no connector here: it is approved, counted, and reported as not reached.
    ctx = context(NOW, ledger=world.ledger, platforms=world.platforms)
    assert ctx.charter.platforms == ("discourse", "matrix")


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"kind": "trial-platform"}, "platform"),
        ({"kind": "trial-platform", "platform": "matrix chat"}, "platform"),
        ({"kind": "trial-platform", "platform": "matrix", "trial_ends": "next spring"}, "trial_ends"),
        ({"kind": "trial-platform", "platform": "matrix", "trial_ends": "2027-01-01T00:00:00"}, "trial_ends"),
        ({"kind": "migrate-platform", "platform": "matrix"}, "replaces"),
        ({"kind": "migrate-platform", "platform": "matrix", "replaces": "matrix"}, "replaces"),
        ({"kind": "retire-platform", "platform": "discord", "replaces": "discourse"}, "replaces"),
        ({"kind": "retire-platform", "platform": "discord", "trial_ends": "2027-01-01"}, "trial_ends"),
        ({"kind": "budget", "amount": "10", "currency": "EUR", "purpose": "x", "platform": "discord"}, "platform"),
    ],
)
def test_platform_proposal_fields_are_checked(fields, culprit):
    with pytest.raises(InvalidProposal) as caught:
        validate_proposal(title="t", summary="s", **fields, charter=default_charter())
    assert caught.value.field == culprit


def test_unknown_and_last_platforms_are_refused_before_anything_is_recorded(board: Board):
    world = board.world
    with pytest.raises(InvalidProposal, match=r"myspace is not a platform in use.*R-PLATFORM"):
        file(board, kind="retire-platform", platform="myspace")
    with pytest.raises(InvalidProposal, match=r"irc is not a platform in use") as caught:
        file(board, kind="migrate-platform", platform="matrix", replaces="irc")
    assert caught.value.field == "replaces"
    with pytest.raises(InvalidProposal, match=r"is not after now") as caught:
        file(board, kind="trial-platform", platform="matrix", trial_ends=(NOW - timedelta(days=1)).date().isoformat())
    assert caught.value.field == "trial_ends"
    with pytest.raises(InvalidProposal, match=r"discord is approved: only a platform not in use"):
        file(board, kind="trial-platform", platform="discord")
    # A member on Discord: the same refusal, answered with the field.
    event = discord_event(
        world,
        kind="propose",
        route="board-proposal",
        payload={
            "user": "cleo_marsh",
            "options": {
                "kind": "retire-platform",
                "title": "Retire MySpace",
                "summary": "Gone.",
                "platform": "myspace",
            },
        },
    )
    with world.ledger.read() as session:
        row = session.get(InboxEvent, event)
    assert handle_board_proposal(ledger=world.ledger, event=row, now=NOW) == "refused:invalid:platform"
    with world.ledger.read() as session:
        assert session.scalars(select(Proposal)).first() is None

    # With Discord retired, the Forum is the last approved platform: never retired.
    with world.ledger.transaction() as session:
        ledger_platforms.record_state(
            session,
            platform="discord",
            state="retired",
            actor="operator",
            decided_by="operator",
            charter_platforms=("discourse", "discord"),
            at=NOW,
        )
    with pytest.raises(InvalidProposal, match=r"discourse is the last approved platform.*R-PLATFORM"):
        file(board, kind="retire-platform", platform="discourse")


def test_an_approval_the_list_no_longer_allows_changes_nothing_and_says_why(board: Board):
    world = board.world
    pid = file(board, kind="retire-platform", platform="discord")
    # Meanwhile the Forum was retired (by another decision): Discord is now the last one.
    with world.ledger.transaction() as session:
        ledger_platforms.record_state(
            session,
            platform="discourse",
            state="retired",
            actor="operator",
            decided_by="operator",
            charter_platforms=("discourse", "discord"),
            at=NOW,
        )
    out = approve(board, pid)
    assert out["result"] == f"proposal:{pid}:approved"
    assert states(world)["discord"] == ("approved", None)
    [refused] = [a for a in actions(world, "platform.refused")]
    assert refused[2] == f"proposal:{pid}"
    assert wg_says(world, "the platform list was not changed")["discord"]
    # The same decision recorded again: nothing twice.
    before = (world.writes(), actions(world, "platform."))
    again = approve(board, pid, at=NOW + timedelta(minutes=5))
    assert again["result"] == out["result"]
    assert (world.writes(), actions(world, "platform.")) == before


# --------------------------------------------------------------------------------------------
# A trial platform's first admin


def test_a_trial_gets_its_first_admin_and_counts_for_the_admin_invariants_from_then(board: Board):
    """Discord on trial (recorded directly): nobody is judged there until its first admin is
    granted, so a Forum admin may become its first admin; from then R-ADMIN-1 judges both, and
    making a second Forum admin Discord's admin too is refused (admin everywhere)."""
    world = board.world
    with world.ledger.transaction() as session:
        ledger_platforms.record_state(
            session,
            platform="discord",
            state="trial",
            actor="operator",
            decided_by="operator",
            at=NOW,
            charter_platforms=("discourse", "discord"),
            trial_ends_at=NOW + timedelta(days=30),
        )
    assert context(NOW, ledger=world.ledger, platforms=world.platforms).charter.platforms == ("discourse",)
    first = roles_change(
        action="grant",
        role="admin",
        platform="discord",
        person="avery_quill",
        reason="first admin of the trial",
        now=NOW,
    )
    assert first["status"] == "applied", first
    later = context(NOW + timedelta(minutes=1), ledger=world.ledger, platforms=world.platforms)
    assert later.charter.platforms == ("discourse", "discord")
    second = roles_change(
        action="grant",
        role="admin",
        platform="discord",
        person="bram_tolliver",
        reason="second admin",
        now=NOW + timedelta(minutes=2),
        return_state=True,
    ).result()
    assert second["status"] == "refused" and second["ruling"] == "R-ADMIN-1", second
    # The daily flow records the first grant once: it counts even if that admin goes later.
    assert platforms_trial_ends(now=NOW + timedelta(minutes=3))["first_admin_recorded"] == ["discord"]
    assert platforms_trial_ends(now=NOW + timedelta(minutes=4))["first_admin_recorded"] == []
