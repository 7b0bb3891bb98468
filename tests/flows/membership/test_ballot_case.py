"""R-APP-5 end to end: each approval ballot shows the voters the case on Discord and on the Forum
(the applicant's answers, the eligibility evidence in short, the nomination and its validity),
within Discord's 2000 characters (a long answer is shortened with a note and a link to the Forum
ballot, never cut silently); when it closes, every platform shows the one merged tally."""

from __future__ import annotations

from datetime import datetime, timedelta

from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.approval import evidence_line, nomination_line
from flows.membership.ballot import close_due_ballots
from flows.membership.intake import intake
from ledger.models import Application, Ballot, BallotOutcome
from rules import default_charter
from tests.support.membership import NOW, apply_proven, press_vote


def _ballot_of(world, app_id):
    with world.ledger.read() as session:
        ballot_id = session.get(Application, app_id).ballot_id
    return ballot_id, ballots.refs(context(NOW), ballot_id)


def _discord_message(world, message_id):
    return next(m for m in world.discord_state()["messages"] if m["id"] == message_id)


def _forum_raw(world, post_id):
    return next(p["raw"] for p in world.discourse_state()["posts"] if p["id"] == int(post_id))


def test_approval_ballot_shows_the_case_and_closes_with_the_merged_tally(world):
    result = apply_proven(world, "yara_penhale", nominator="ursula_finch", discord=True)
    ballot_id, where = _ballot_of(world, result["application"])
    member_days = (NOW - datetime.fromisoformat("2024-06-01T00:00:00+00:00")).days
    shown = {
        "discord": _discord_message(world, where["discord"]["message_id"])["content"],
        "discourse": _forum_raw(world, where["discourse"]["ballot_id"]),
    }
    for platform, text in shown.items():
        assert "I answer newcomers' questions every week." in text, platform
        assert "Moderation of a regional user group." in text, platform
        assert "Forum: 25 days visited, 9 posts, account 300 days" in text, platform
        assert f"Discord: member {member_days} days, 12 messages/90 days" in text, platform
        assert "nominated by ursula_finch, a DSF Individual Member: valid" in text, platform
    assert len(shown["discord"]) <= 2000

    # One yes in the Forum poll (read by the closer), then three on Discord: 4 of 7 decide it.
    world.discourse_sb.cast_vote(
        world.discourse_url,
        ballots.platform_ballot("discourse", where["discourse"]),
        voter="avery_quill",
        option_index=0,
    )
    assert close_due_ballots(now=NOW + timedelta(minutes=5))[0]["outcome"] == "open"
    for voter in ("cleo_marsh", "dario_fenwick", "felix_oakes"):
        press_vote(world, where["discord"], voter, 0, now=NOW + timedelta(minutes=10))
    with world.ledger.read() as session:
        assert session.get(Ballot, ballot_id).outcome == BallotOutcome.PASSED

    merged = "Closed: passed, 4 yes, 0 no, 0 abstain of 7 (Discord 3, Forum 1)"
    [poll] = [p for p in world.discourse_state()["polls"] if p["post_id"] == int(where["discourse"]["ballot_id"])]
    assert poll["status"] == "closed"
    topic = int(where["discourse"]["thread_id"])
    replies = [p["raw"] for p in world.discourse_state()["posts"] if p["topic_id"] == topic and p["post_number"] > 1]
    assert any(merged in r for r in replies)
    message = _discord_message(world, where["discord"]["message_id"])
    assert merged in message["content"] and message["components"] == []
    everything = [m["content"] for m in world.discord_state()["messages"]] + [
        p["raw"] for p in world.discourse_state()["posts"]
    ]
    assert not [t for t in everything if "0 votes" in t]


def test_long_answers_are_shortened_on_discord_with_a_link_to_the_forum_ballot(world):
    directory = world.platforms.space("discourse").directory
    why = " ".join(f"reason-{i:04d}" for i in range(300))  # 3599 characters (at most 4000)
    experience = "I moderate a user group. " * 120  # 3000 characters
    result = intake(
        forum_username="ivo_stone",
        motivation=why,
        experience=experience,
        source="discourse",
        source_ref="test:ivo_stone-long",
        proven_accounts={"discourse": directory.find_user("ivo_stone").id},
        now=NOW,
    )
    ballot_id, where = _ballot_of(world, result["application"])
    forum = _forum_raw(world, where["discourse"]["ballot_id"])
    assert why in forum and experience.strip() in forum  # the Forum holds them in full
    content = _discord_message(world, where["discord"]["message_id"])["content"]
    assert len(content) <= 2000
    assert content.count(f"[shortened; read it in full at {where['discourse']['url']}]") == 2
    assert "reason-0000" in content and "reason-0299" not in content
    assert "Vote yes, no or abstain" in content  # the instructions are not cut off


def test_evidence_and_nomination_lines_say_what_is_known_and_what_is_not():
    evidence = {
        "checked_at": "2026-12-05T00:00:00+00:00",
        "nominator": "nell_ashgrove",
        "platforms": {
            "discourse": {
                "created_at": "2025-11-30T00:00:00+00:00",
                "days_visited": 14,
                "post_count": 6,
                "answer": "yes",
                "reason": "…",
            },
            "discord": {
                "joined_at": "2026-05-19T00:00:00+00:00",
                "messages_90d": None,
                "answer": "unknown",
                "reason": "…",
            },
        },
        "nomination_valid": False,
    }
    assert evidence_line(evidence, charter=default_charter()) == (
        "Forum: 14 days visited, 6 posts, account 370 days; Discord: member 200 days, unknown messages/90 days"
    )
    assert nomination_line("nell_ashgrove", evidence, handle="orla_quince") == (
        "nominated by nell_ashgrove, who is not on the list of DSF Individual Members: not valid (R-ELIG-2)"
    )
    assert nomination_line(None, evidence, handle="orla_quince") == "none (applied without a nominator)"
    assert nomination_line("Orla_Quince", {}, handle="orla_quince") == "self-nominated (Orla_Quince, R-ELIG-3)"
    unfetched = {"platforms": {"discord": {"answer": "unknown", "reason": "not fetched"}}}
    assert evidence_line(unfetched, charter=default_charter()) == "Discord: figures not fetched"
    assert evidence_line({}, charter=default_charter()) == "no platform figures (eligible by nomination)"
    # A figure the Forum did not report is shown as unknown, the others as they were read.
    forum = {**evidence["platforms"]["discourse"], "days_visited": None, "post_count": 7}
    assert evidence_line(
        {"checked_at": evidence["checked_at"], "platforms": {"discourse": forum}}, charter=default_charter()
    ) == ("Forum: unknown days visited, 7 posts, account 370 days")
