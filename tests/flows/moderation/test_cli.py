"""`charterflow moderation links|ack` against the moderation world (the Forum side, which has
no buttons)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from charterflow.cli import app
from flows.moderation.sync import moderation_sync
from ledger.models_moderation import ModerationAlert
from rules.reports import Quarter
from tests.support.moderation import NOW, World


def test_links_and_acknowledgements_from_the_command_line(world: World) -> None:
    run = CliRunner().invoke
    world.suspend_on_forum("rowan_vale", reason="Spam")
    world.discord_act(action_type=22, user="bram_tolliver", target="cleo_marsh", reason="raid")
    moderation_sync(now=NOW)

    listed = run(app, ["moderation", "links", "list", "--status", "suggested"])
    assert listed.exit_code == 0 and "discord:rowan_vale = discourse:rowan_vale" in listed.output
    link_id = listed.output.split()[0]
    assert run(app, ["moderation", "links", "list", "--status", "maybe"]).exit_code == 2
    confirmed = run(app, ["moderation", "links", "confirm", link_id, "--by", "bram_tolliver"])
    assert confirmed.exit_code == 0 and confirmed.output.strip() == f"link {link_id}: confirmed"
    again = run(app, ["moderation", "links", "reject", link_id, "--by", "bram_tolliver"])
    assert again.output.strip() == f"link {link_id}: confirmed (already decided)"

    with world.ledger.read() as session:
        alerts = {a.platform: a.id for a in session.scalars(select(ModerationAlert))}
    # The ban of cleo alerted the Forum; the confirmed link of rowan alerted Discord.
    assert set(alerts) == {"discourse", "discord"}
    forum_alert = alerts["discourse"]
    done = run(app, ["moderation", "ack", str(forum_alert), "--by", "bram_tolliver"])
    assert done.exit_code == 0 and done.output.strip() == f"alert {forum_alert} acknowledged by bram_tolliver"
    # The Forum private message gets a reply naming who acknowledged it.
    replies = [p["raw"] for p in world.forum_state()["posts"] if p["raw"].startswith("Acknowledged by")]
    assert replies == [replies[0]] and "**bram_tolliver**" in replies[0]
    twice = run(app, ["moderation", "ack", str(forum_alert), "--by", "someone_else"])
    assert twice.output.strip() == f"alert {forum_alert} acknowledged by bram_tolliver (already)"
    missing = run(app, ["moderation", "ack", "9999", "--by", "bram_tolliver"])
    assert missing.exit_code == 2 and "no moderation alert 9999" in missing.output


def test_the_report_covers_this_quarter_by_default_and_says_none(world: World) -> None:
    run = CliRunner().invoke
    world.suspend_on_forum("rowan_vale", reason="Spam")
    moderation_sync(now=NOW)
    quarter = Quarter.of(NOW)  # the world's "now" is the wall clock's

    report = run(app, ["moderation", "report"])
    assert report.exit_code == 0, report.output
    lines = report.output.splitlines()
    assert lines[0].startswith(
        f"Moderation consistency, this quarter ({quarter.label}) so far: {quarter.start:%Y-%m-%d} to "
    )
    assert lines[1] == "1 actions" and "  discourse: suspend 1" in lines

    # A period without actions: every section says so.
    before = quarter.start - timedelta(days=30)
    empty = run(
        app,
        ["moderation", "report", "--since", f"{before:%Y-%m-%d}", "--until", f"{before + timedelta(days=7):%Y-%m-%d}"],
    )
    assert empty.exit_code == 0, empty.output
    lines = empty.output.splitlines()
    assert lines[0] == (f"Moderation consistency, {before:%Y-%m-%d} to {before + timedelta(days=7):%Y-%m-%d}")
    assert lines[1] == "0 actions"
    for header in (
        "Actions per platform and type:",
        "Sanctioned on one platform only:",
        "Moderators' reasons, grouped:",
    ):
        assert lines[lines.index(header) + 1] == "  none"
    assert "Forum, median time from flag to action: none (no flag was handled)" in lines
