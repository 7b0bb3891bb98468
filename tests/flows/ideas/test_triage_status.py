"""R-IDEA-2 triage on a seeded backlog (duplicates, Board kinds, platforms, flags, one digest per
week, the backlog artifact), R-IDEA-1 status changes by members (buttons and /idea-status), and
`charterflow ideas list|add`."""

from __future__ import annotations

import json
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import select
from typer.testing import CliRunner

from flows import inbox
from flows.ideas.handlers import STATUS_ROUTE
from flows.ideas.status import handle_status
from flows.ideas.triage import ideas_triage, iso_week
from ledger import ideas as backlog
from ledger.models import AuditEntry, Idea, IdeaStatus, IdeaStatusChange, InboxEvent, Person
from tests.support.ideas import bot_messages, events, wait_for_event
from tests.support.membership import NOW

# (title, body, age in days, status): the seeded backlog, ids 1..9 in this order.
SEED = [
    ("Weekly office hours on Discord", None, 40, "new"),  # 1 flagged (40 d)
    ("Dark mode for the forum", "Easier on the eyes at night.", 12, "new"),  # 2
    ("Hold weekly office hours in the Discord server", None, 5, "new"),  # 3 duplicate of 1
    ("Budget of 300 USD for conference stickers", None, 4, "new"),  # 4 Board: budget
    ("Migrate the forum to Zulip", "Threads work better there.", 3, "new"),  # 5 Board: migrate
    ("Translate the code of conduct into Spanish", None, 3, "new"),  # 6
    ("Spanish translation of the Code of Conduct", None, 2, "new"),  # 7 duplicate of 6
    ("A Slack workspace channel for moderators", None, 1, "new"),  # 8 slack
    ("Mentoring programme for new moderators", None, 60, "accepted"),  # 9 decided: no flag
]


def seed(world) -> list[int]:
    ids = []
    with world.ledger.transaction() as session:
        for n, (title, body, age, status) in enumerate(SEED, start=1):
            at = NOW - timedelta(days=age)
            idea, _ = backlog.file_idea(
                session,
                title=title,
                body=body,
                source="operator",
                source_key=f"operator:seed-{n}",
                actor="operator",
                at=at,
            )
            if status == "accepted":
                backlog.change_status(session, idea, "triaged", actor="operator", at=at)
                backlog.change_status(session, idea, "accepted", actor="operator", at=at)
            ids.append(idea.id)
    return ids


def digest_messages(world) -> list[dict]:
    return bot_messages(world, "Ideas digest")


def test_triage_finds_duplicates_classifies_flags_and_posts_one_digest(world):
    ids = seed(world)
    state = ideas_triage(now=NOW, return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["triaged"] == ids[:8]
    assert result["duplicates"] == {ids[2]: ids[0], ids[6]: ids[5]}
    assert result["needs_board"] == [ids[3], ids[4]]
    assert result["flagged"] == [ids[0]]
    assert result["digest"]["posted"] is True and result["digest"]["week"] == iso_week(NOW)
    with world.ledger.read() as session:
        rows = {i.id: i for i in session.scalars(select(Idea))}
        assert rows[ids[2]].duplicate_of_id == ids[0] and float(rows[ids[2]].similarity) >= 0.6
        assert rows[ids[3]].board_kind == "budget" and rows[ids[4]].board_kind == "migrate-platform"
        assert rows[ids[1]].needs_board is False and rows[ids[1]].platform == "discourse"
        assert rows[ids[0]].platform == "discord" and rows[ids[7]].platform == "slack"
        assert rows[ids[5]].platform == "general"
        assert all(rows[i].status == IdeaStatus.TRIAGED for i in ids[:8])
        assert rows[ids[8]].status == IdeaStatus.ACCEPTED and rows[ids[8]].flagged_at is None
        assert rows[ids[0]].flagged_at is not None
        actions = [a for (a,) in session.execute(select(AuditEntry.action))]
    assert actions.count("idea.triaged") == 8 and actions.count("idea.flagged") == 1

    # The digest: 8 waiting items, 5 per message (one row of buttons each): two messages in
    # the WG channel, within Discord's limits, the duplicate and the flag shown.
    posted = digest_messages(world)
    assert len(posted) == 2 and all(len(m["content"]) <= 2000 for m in posted)
    wg_channel = world.platforms.space("discord").connector.channel_id(world.platforms.space("discord").wg_channel)
    assert {m["channel_id"] for m in posted} == {wg_channel}
    text = "\n".join(m["content"] for m in posted)
    assert f"likely duplicate of #{ids[0]}" in text and "⚠️" in text and "Board (budget)" in text
    buttons = [b["custom_id"] for m in posted for row in m["components"] for b in row["components"]]
    assert len(buttons) == 8 * 3 and f"cfi:{ids[0]}:accepted" in buttons

    # The backlog table artifact of this run.
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    table = next(a for a in artifacts if a.key == "ideas-backlog")
    data = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert table.type == "table" and len(data) == 9
    assert next(r for r in data if r["id"] == ids[3])["board"] == "Board (budget)"

    # Run again in the same week: nothing new to triage, nothing flagged twice, no digest.
    # NOW is the real clock: two hours on from a Sunday evening is the next ISO week.
    monday = (NOW - timedelta(days=NOW.weekday())).replace(hour=0, minute=0, second=0)
    later = min(NOW + timedelta(hours=2), monday + timedelta(days=7, seconds=-1))
    assert iso_week(later) == iso_week(NOW)
    again = ideas_triage(now=later)
    assert again["triaged"] == [] and again["flagged"] == []
    assert again["digest"]["posted"] is False
    assert len(digest_messages(world)) == 2


def _press(world, gateway, *, user: str, custom_id: str, count: int) -> str:
    [message] = [
        m
        for m in digest_messages(world)
        if any(b["custom_id"] == custom_id for r in m["components"] for b in r["components"])
    ]
    answer = world.discord_sb.press(
        world.discord_url, user=user, channel_id=message["channel_id"], message_id=message["id"], custom_id=custom_id
    )
    assert answer["status"] == 200 and answer["response"]["type"] == 5
    event_id = wait_for_event(world, source="discord", kind="component", route=STATUS_ROUTE, count=count)
    return inbox.handle_event(world.ledger, event_id)


def test_members_change_status_others_are_refused_and_everything_is_audited(world, gateway):
    ids = seed(world)
    ideas_triage(now=NOW)
    assert inbox.HANDLERS[STATUS_ROUTE] is handle_status
    first = ids[0]

    # A member accepts idea 1 with the digest's button.
    assert (
        _press(world, gateway, user="cleo_marsh", custom_id=f"cfi:{first}:accepted", count=1)
        == f"idea:{first}:accepted"
    )
    assert bot_messages(world, f"Idea **#{first}**")
    # The digest shows it to the rest of the WG: the item's status, its buttons gone, the
    # other items' buttons kept.
    [shown] = [m for m in digest_messages(world) if f"**#{first}**" in m["content"]]
    assert f"**#{first}** Weekly office hours on Discord (accepted)" in shown["content"]
    buttons = [b["custom_id"] for r in shown["components"] for b in r["components"]]
    assert not any(b.startswith(f"cfi:{first}:") for b in buttons)
    assert f"cfi:{first + 1}:declined" in buttons
    edited = shown["edited_at"]
    assert edited is not None
    # Someone on Discord who is not a WG member (a guest who reads wg-private) is refused; the
    # refusal is audited.
    assert (
        _press(world, gateway, user="ivo_stone", custom_id=f"cfi:{first + 1}:declined", count=2)
        == "refused:not-a-member"
    )
    assert bot_messages(world, "Only active members of the working group")
    [again] = [m for m in digest_messages(world) if m["id"] == shown["id"]]
    assert again["edited_at"] == edited, "a refused press edits nothing"

    # /idea-status: a move R-IDEA-1 forbids is refused naming the allowed one; then allowed.
    def command(user: str, count: int, **options) -> str:
        world.discord_sb.command(world.discord_url, user=user, name="idea-status", options=options)
        return inbox.handle_event(
            world.ledger, wait_for_event(world, source="discord", kind="idea-status", route=STATUS_ROUTE, count=count)
        )

    assert command("dario_fenwick", 1, id=first, status="done") == "refused:transition"
    assert bot_messages(world, "from accepted it may go to in-progress")
    assert (
        command("dario_fenwick", 2, id=first, status="in-progress", note="Starting in December")
        == f"idea:{first}:in-progress"
    )
    assert command("dario_fenwick", 3, id=999, status="done") == "refused:no-such-idea"

    with world.ledger.read() as session:
        idea = session.get(Idea, first)
        assert idea.status == IdeaStatus.IN_PROGRESS
        history = list(
            session.scalars(
                select(IdeaStatusChange).where(IdeaStatusChange.idea_id == first).order_by(IdeaStatusChange.id)
            )
        )
        assert [(h.from_status, h.to_status) for h in history] == [
            (None, IdeaStatus.NEW),
            (IdeaStatus.NEW, IdeaStatus.TRIAGED),
            (IdeaStatus.TRIAGED, IdeaStatus.ACCEPTED),
            (IdeaStatus.ACCEPTED, IdeaStatus.IN_PROGRESS),
        ]
        cleo = session.scalar(select(Person).where(Person.handle == "cleo_marsh"))
        assert history[2].changed_by == f"person:{cleo.id}"
        assert history[3].note == "Starting in December"
        refused = list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == "idea.status-refused").order_by(AuditEntry.seq)
            )
        )
        assert [json.loads(r.payload_json)["reason"] for r in refused] == ["not-a-member", "transition", "no-such-idea"]
        assert refused[0].subject == f"idea:{first + 1}"
        assert json.loads(refused[0].payload_json)["person"] is None  # not a person we know
        assert session.get(Idea, first + 1).status == IdeaStatus.TRIAGED
        changes = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "idea.status").where(AuditEntry.subject == f"idea:{first}")
        ).all()
        assert len(changes) == 3  # triaged, accepted, in-progress
        # Nothing in the audit log names a platform account or the note.
        assert "ivo_stone" not in " ".join(r.payload_json for r in refused)
        assert "December" not in " ".join(c.payload_json for c in changes)

    # The same status event handled again changes nothing and answers nothing twice.
    event_id = events(world, source="discord", kind="idea-status")[1]
    with world.ledger.read() as session:
        event = session.get(InboxEvent, event_id)
    before = len(bot_messages(world, "is now **in-progress**"))
    assert handle_status(ledger=world.ledger, event=event) == f"idea:{first}:in-progress"
    assert len(bot_messages(world, "is now **in-progress**")) == before == 1
    with world.ledger.read() as session:
        assert len(session.get(Idea, first).history) == 4


def test_ideas_list_filters_and_add(world, cli):
    ids = seed(world)
    ideas_triage(now=NOW, post_digest=False)
    runner = CliRunner()
    everything = runner.invoke(cli, ["ideas", "list", "--json"])
    assert everything.exit_code == 0, everything.output
    assert [r["id"] for r in json.loads(everything.output)] == ids
    discord = runner.invoke(cli, ["ideas", "list", "--platform", "discord", "--json"])
    assert [r["id"] for r in json.loads(discord.output)] == [ids[0], ids[2]]
    accepted = runner.invoke(cli, ["ideas", "list", "--status", "accepted"])
    assert accepted.exit_code == 0
    assert "Mentoring programme" in accepted.output and "Dark mode" not in accepted.output
    both = runner.invoke(cli, ["ideas", "list", "-s", "triaged", "-p", "slack"])
    assert "Slack workspace" in both.output and both.output.count("\n") == 2  # header + 1 row
    none = runner.invoke(cli, ["ideas", "list", "--status", "done"])
    assert none.exit_code == 0 and "no ideas match" in none.output
    bad = runner.invoke(cli, ["ideas", "list", "--status", "shipped"])
    assert bad.exit_code == 2 and "--status: unknown value 'shipped'" in bad.output

    added = runner.invoke(
        cli, ["ideas", "add", "A glossary of Django terms", "--author", "gale_morrow", "--ref", "mail-7"]
    )
    assert added.exit_code == 0 and added.output.startswith("idea #")
    twice = runner.invoke(cli, ["ideas", "add", "A glossary of Django terms", "--ref", "mail-7"])
    assert "was already filed" in twice.output
    assert runner.invoke(cli, ["ideas", "add", " "]).exit_code == 2
    new = json.loads(runner.invoke(cli, ["ideas", "list", "--status", "new", "--json"]).output)
    assert [(r["title"], r["author"]) for r in new] == [("A glossary of Django terms", "gale_morrow")]
