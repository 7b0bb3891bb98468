"""Discord ``/role`` (R-MOD) and the moderation guide's Acknowledge button (R-TRAIN), through
the real gateway: the Discord sandbox signs the interaction, the gateway defers and stores it,
and the test runs the stored event as the task worker does (``flows.inbox.handle_event``)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from connectors.base import Role
from flows import inbox
from flows.roles.handlers import handle_role_command
from flows.roles.training import handle_training_ack, roles_training_reminders
from ledger.models import AuditEntry, InboxEvent
from ledger.models_roles import RoleTraining
from tests.support.membership import NOW
from tests.support.roles import command, followups, holders

runner = CliRunner()


def slash_role(w, gateway, user: str, words: str, reason: str) -> int:
    """``user`` runs ``/role <action> <role> <platform> <person>`` (``words``) with ``reason`` in
    Discord; the stored event's id."""
    action, role, platform, person = words.split()
    return command(w, gateway, user=user, action=action, role=role, platform=platform, person=person, reason=reason)


def run(w, event_id: int) -> str:
    return inbox.handle_event(w.ledger, event_id)


def guide_dms(w, username: str) -> list[dict]:
    return [
        m for m in w.discord_state()["messages"] if f"Hello {username}, you are now a moderator" in (m["content"] or "")
    ]


def test_the_routes_are_registered():
    assert inbox.HANDLERS["roles-change"] is handle_role_command
    assert inbox.COMMAND_ROUTES["role"] == "roles-change"
    assert inbox.HANDLERS["roles-training-ack"] is handle_training_ack
    assert inbox.COMPONENT_ROUTES["cft:"] == "roles-training-ack"


def test_a_member_grants_a_moderator_who_acknowledges_the_guide(roles_world, gateway, cli):
    w = roles_world
    event = slash_role(w, gateway, "cleo_marsh", "grant moderator discourse felix_oakes", "covers the evenings")
    assert run(w, event) == "roles-change:applied"
    assert "felix_oakes" in holders(w, "discourse", Role.moderator())
    answers = followups(w)
    assert any(a.startswith("Done (grant moderator on discourse to felix_oakes)") for a in answers)
    with w.ledger.read() as session:
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "roles.change"))
        assert entry.actor == f"person:{w.people['cleo_marsh']}"

    # A replay of the same event (a retry after a crash) sends nothing.
    with w.ledger.transaction() as session:
        session.get(InboxEvent, event).processed_at = None
    writes = w.writes()
    assert run(w, event) == "roles-change:applied"
    assert w.writes() == writes

    # The new moderator got the Forum's guide by Discord DM, with an Acknowledge button.
    (dm,) = guide_dms(w, "felix_oakes")
    assert "Moderating the Forum" in dm["content"] and len(dm["content"]) <= 2000
    button = dm["components"][0]["components"][0]
    assert button["label"] == "Acknowledge" and button["custom_id"].startswith("cft:")

    # Someone else presses it: refused; felix presses it: recorded once.
    for user, expected in (
        ("gale_morrow", "refused:not-yours"),
        ("felix_oakes", f"training:{button['custom_id'][4:]}:acknowledged"),
        ("felix_oakes", f"training:{button['custom_id'][4:]}:acknowledged"),
    ):
        w.discord_sb.press(
            w.discord_url, user=user, channel_id=dm["channel_id"], message_id=dm["id"], custom_id=button["custom_id"]
        )
        with w.ledger.read() as session:
            pressed = session.scalars(
                select(InboxEvent.id).where(InboxEvent.route == "roles-training-ack").order_by(InboxEvent.id.desc())
            ).first()
        assert run(w, pressed) == expected
    with w.ledger.read() as session:
        (row,) = session.scalars(select(RoleTraining))
        assert row.acknowledged_at is not None and row.platform == "discourse"
        acks = session.scalars(select(AuditEntry).where(AuditEntry.action == "roles.training-acknowledged")).all()
        assert len(acks) == 1 and acks[0].actor == f"person:{w.people['felix_oakes']}"
    listed = runner.invoke(cli, ["roles", "training"])
    assert listed.exit_code == 0, listed.output
    assert "discourse: 1 of 1 acknowledged" in listed.output
    assert "felix_oakes: acknowledged since" in listed.output


def test_refusals_name_the_ruling_the_state_or_the_unknown_part(roles_world, gateway):
    w = roles_world
    before = w.writes()
    outsider = slash_role(w, gateway, "ivo_stone", "grant moderator discord ivo_stone", "I would like to help")
    assert run(w, outsider) == "refused:R-MOD:not-a-member"

    last_but_one = slash_role(w, gateway, "cleo_marsh", "revoke admin discord dario_fenwick", "steps down")
    assert run(w, last_but_one) == "roles-change:refused"
    unknown = slash_role(w, gateway, "cleo_marsh", "grant moderator discord nobody_here", "because")
    assert run(w, unknown) == "roles-change:refused"
    slack = slash_role(w, gateway, "cleo_marsh", "grant moderator slack felix_oakes", "because")
    assert run(w, slack) == "roles-change:refused"

    answers = followups(w)
    assert any("Only members of the working group" in a for a in answers)
    refused = next(a for a in answers if a.startswith("Refused by R-ADMIN-2"))
    assert "Admins it would have left" in refused and "discord: cleo_marsh" in refused
    assert any("unknown person 'nobody_here'" in a and "the person is the problem" in a for a in answers)
    assert any("unknown platform 'slack'" in a for a in answers)
    assert holders(w, "discord", Role.admin()) == {"cleo_marsh", "dario_fenwick"}
    role_writes = {k: v - before.get(k, 0) for k, v in w.writes().items() if "/roles/" in k and v != before.get(k, 0)}
    assert role_writes == {}


def test_reminders_once_per_reminder_until_acknowledged(roles_world, gateway, cli):
    w = roles_world
    event = slash_role(w, gateway, "cleo_marsh", "grant moderator discord gale_morrow", "needs cover")
    assert run(w, event) == "roles-change:applied"
    assert len(guide_dms(w, "gale_morrow")) == 1

    def reminders() -> list[str]:
        return [
            m["content"]
            for m in w.discord_state()["messages"]
            if "Reminder: please acknowledge" in (m["content"] or "")
        ]

    assert roles_training_reminders(now=NOW + timedelta(days=13))["sent"] == []
    first = roles_training_reminders(now=NOW + timedelta(days=14, hours=1))
    assert len(first["sent"]) == 1 and len(reminders()) == 1
    # The same day again, or the next: nothing new.
    assert roles_training_reminders(now=NOW + timedelta(days=15))["sent"] == []
    assert len(reminders()) == 1
    second = roles_training_reminders(now=NOW + timedelta(days=28, hours=1))
    assert len(second["sent"]) == 1 and len(reminders()) == 2
    listed = runner.invoke(cli, ["roles", "training"])
    assert "gale_morrow: NOT acknowledged, sent" in listed.output
    assert "2 reminder(s)" in listed.output
    # Recorded by an operator (e.g. an answer by mail): no more reminders.
    ack = runner.invoke(cli, ["roles", "training", "ack", "gale_morrow", "discord"])
    assert ack.exit_code == 0 and "recorded" in ack.output
    assert roles_training_reminders(now=NOW + timedelta(days=42, hours=1))["sent"] == []
    bad = runner.invoke(cli, ["roles", "training", "ack", "gale_morrow", "discourse"])
    assert bad.exit_code == 2
    assert "error: gale_morrow was not sent the discourse moderation guide" in bad.output
