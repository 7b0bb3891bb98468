"""R-GUIDE end to end against the sandboxes: every guide published once per platform (a Forum
topic, a Discord message), nothing sent again when nothing changed, edited in place (same post,
same message) when its text changes with the version history in the ledger; a broken guide
reported by name and line and not published; newcomers pointed at the guides (Discord's welcome
screen, the Forum's welcome message); Discord refusing those (no Manage Server) stops nothing else,
fails the run naming it, and the next run once it is granted sets them."""

from __future__ import annotations

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from connectors.errors import FatalError
from flows.guides.library import load_guides
from flows.guides.publish import ONBOARDING_TITLE, guides_publish, refusals, status_rows
from flows.kit import context
from ledger import guides as shelf_ledger
from tests.support.guides import CHANNELS
from tests.support.membership import NOW


def _topics(world, title):
    return [t for t in world.discourse_state()["topics"] if t["title"] == title]


def _discord_messages(world, containing):
    return [m for m in world.discord_state()["messages"] if containing in (m.get("content") or "")]


def test_r_guide_published_once_per_platform_then_edited_in_place(world, guides_folder):
    out = guides_publish(channels=CHANNELS, now=NOW)
    assert out["errors"] == []
    rows = {(r["guide"], r["platform"]): r for r in out["guides"]}
    assert len(rows) == 10 and {r["change"] for r in rows.values()} == {"published"}
    assert {r["mode"] for r in rows.values()} == {"whole"}
    title = "How to ask a good question on the Forum"
    [topic] = _topics(world, title)
    [message] = _discord_messages(world, f"**{title}**")
    assert rows[("asking-questions", "discourse")]["url"].endswith(f"/t/{topic['slug']}/{topic['id']}/1")

    # Nothing changed: nothing is sent (the sandboxes count every write).
    writes = world.writes()
    again = guides_publish(channels=CHANNELS, now=NOW)
    assert {r["change"] for r in again["guides"]} == {"unchanged"}
    assert world.writes() == writes

    # A WG member changes one guide: edited in place on both platforms, version 2 recorded.
    path = guides_folder / "asking-questions.md"
    path.write_text(path.read_text().replace("Search the Forum first.", "Search the Forum and the docs first."))
    changed = guides_publish(channels=CHANNELS, now=NOW)
    by = {(r["guide"], r["platform"]): r["change"] for r in changed["guides"]}
    assert by[("asking-questions", "discourse")] == by[("asking-questions", "discord")] == "edited"
    assert [c for k, c in by.items() if k[0] != "asking-questions"] == ["unchanged"] * 8
    assert len(_topics(world, title)) == 1
    [post] = [p for p in world.discourse_state()["posts"] if p["id"] == topic["post_ids"][0]]
    assert "Search the Forum and the docs first." in post["raw"]
    [edited] = _discord_messages(world, f"**{title}**")
    assert edited["id"] == message["id"] and "the docs first" in edited["content"]
    with world.ledger.read() as session:
        assert [v.version for v in shelf_ledger.versions(session, "asking-questions")] == [1, 2]
        assert {p.version for p in shelf_ledger.posts(session) if p.slug == "asking-questions"} == {2}
    rows_now = status_rows(context(NOW), out_guides(guides_folder), channels=CHANNELS)
    states = {(r["guide"], r["platform"]): r["state"] for r in rows_now if r["platform"] in CHANNELS}
    assert set(states.values()) == {"current"}


def out_guides(folder):
    return load_guides(folder)[0]


def test_r_guide_broken_front_matter_is_reported_and_not_published(world, guides_folder):
    (guides_folder / "events.md").write_text(
        "---\ntitle: Community events\nplatforms: discord\naudince: everyone\n---\nText of the guide.\n"
    )
    out = guides_publish(channels=CHANNELS, now=NOW)
    [refused] = [r for r in out["guides"] if r["change"] == "refused"]
    assert refused["guide"] == "events.md" and refused["reason"].startswith("line 4: unknown field 'audince'")
    assert out["errors"] == ["events.md:4: unknown field 'audince' (fields: title, platforms, audience, keywords)"]
    assert not _topics(world, "Community events") and not _discord_messages(world, "Community events")
    assert len([r for r in out["guides"] if r["change"] == "published"]) == 10  # the others are


def test_r_guide_newcomers_pointed_at_the_guides(world, guides_folder):
    out = guides_publish(channels=CHANNELS, now=NOW)
    assert {w["platform"] for w in out["welcome"]} == {"discourse", "discord"}
    sb = world.discord_sb
    screen = httpx.get(
        f"{world.discord_url}/api/v10/guilds/{sb.seed.guild_id}/welcome-screen",
        headers={"Authorization": f"Bot {sb.token}", "User-Agent": "DiscordBot (test, 1)"},
    ).json()
    assert screen["description"].startswith("New here? Start with our community guides")
    assert [c["channel_id"] for c in screen["welcome_channels"]] == [sb.channel_id("general")]
    forum = world.platforms.space("discourse").connector
    text = forum.client.get(f"/admin/customize/site_texts/{forum.WELCOME_TEXT}.json", what="welcome")
    welcome = text["site_text"]["value"]
    url = next(r["url"] for r in out["guides"] if r["guide"] == "welcome" and r["platform"] == "discourse")
    assert f"[Welcome to the Django community]({url})" in welcome
    # Unchanged guides: the welcome is not sent again.
    writes = world.writes()
    assert guides_publish(channels=CHANNELS, now=NOW)["welcome"] == out["welcome"]
    assert world.writes() == writes


def test_r_guide_too_long_is_split_or_linked_never_cut(world, guides_folder):
    paragraph = "Moderators read every flag and answer within a day where they can. " * 6
    head = "---\ntitle: {title}\nplatforms: discourse, discord\naudience: members\n---\n"
    (guides_folder / "moderation-notes.md").write_text(
        head.format(title="Moderation notes") + "\n\n".join([paragraph] * 8)
    )  # ~3300 characters
    (guides_folder / "handbook.md").write_text(
        head.format(title="The moderators' handbook") + "\n\n".join([paragraph] * 30)
    )  # ~12000
    out = guides_publish(channels=CHANNELS, now=NOW)
    rows = {(r["guide"], r["platform"]): r for r in out["guides"]}
    assert rows[("moderation-notes", "discourse")]["mode"] == "whole"
    assert rows[("moderation-notes", "discord")]["mode"] == "split"
    parts = _discord_messages(world, "(part ")
    notes = [m for m in parts if "Moderation notes" in m["content"] or "of 2)" in m["content"]]
    assert [m["content"].rsplit("\n\n", 1)[-1] for m in notes] == ["(part 1 of 2)", "(part 2 of 2)"]
    # Too many Discord messages: a summary links to the whole guide on the Forum.
    handbook = rows[("handbook", "discord")]
    assert handbook["mode"] == "linked" and "a summary links to it" in handbook["reason"]
    [summary] = _discord_messages(world, "The moderators' handbook")
    assert rows[("handbook", "discourse")]["url"] in summary["content"]
    [topic] = _topics(world, "The moderators' handbook")
    [post] = [p for p in world.discourse_state()["posts"] if p["id"] == topic["post_ids"][0]]
    assert post["raw"].count("Moderators read every flag") == 6 * 30  # the whole text there

    # The split guide becomes short: its first message is edited, the second says it is unused.
    (guides_folder / "moderation-notes.md").write_text(head.format(title="Moderation notes") + paragraph)
    again = {(r["guide"], r["platform"]): r for r in guides_publish(channels=CHANNELS, now=NOW)["guides"]}
    assert again[("moderation-notes", "discord")]["mode"] == "whole"
    assert again[("moderation-notes", "discord")]["change"] == "edited"
    now_shown = [m for m in world.discord_state()["messages"] if m["id"] in {n["id"] for n in notes}]
    assert sorted(m["content"].startswith("**Moderation notes**") for m in now_shown) == [False, True]
    assert any("is no longer used" in m["content"] for m in now_shown)


def test_r_guide_discord_onboarding_prompt_kept_in_step_beside_the_moderators_prompts(world, guides_folder):
    sb = world.discord_sb
    url = f"{world.discord_url}/api/v10/guilds/{sb.seed.guild_id}/onboarding"
    headers = {"Authorization": f"Bot {sb.token}", "User-Agent": "DiscordBot (test, 1)"}
    general = sb.channel_id("general")
    # The moderators' own prompt, set by hand in Discord: every publish keeps it as it is.
    theirs = {
        "id": "1200000000000000001",
        "title": "What brings you here?",
        "options": [{"title": "Learning Django", "description": "New to Django", "channel_ids": [general]}],
    }
    before = httpx.put(url, headers=headers, json={"prompts": [theirs], "default_channel_ids": [general]}).json()

    def puts():
        return world.discord_state()["requests"].get("PUT /guilds/{guild_id}/onboarding", 0)

    sent = puts()
    out = guides_publish(channels=CHANNELS, now=NOW)
    [onboarding] = out["onboarding"]
    assert onboarding["platform"] == "discord" and onboarding["changed"] and onboarding["options"] == 5
    shown = httpx.get(url, headers=headers).json()
    assert shown["prompts"][0] == before["prompts"][0] and shown["default_channel_ids"] == [general]
    ours = shown["prompts"][1]
    assert ours["id"] == onboarding["id"] and ours["title"] == ONBOARDING_TITLE
    links = {r["url"] for r in out["guides"] if r["platform"] == "discord"}
    assert {o["description"] for o in ours["options"]} <= links
    assert {c for o in ours["options"] for c in o["channel_ids"]} == {general}
    assert puts() == sent + 1
    rows = status_rows(context(NOW), out_guides(guides_folder), channels=CHANNELS)
    assert {r["state"] for r in rows if r["guide"] == "(onboarding)"} == {"current"}

    # Nothing changed: no PUT. A guide renamed: one PUT, the moderators' prompt still first.
    guides_publish(channels=CHANNELS, now=NOW)
    assert puts() == sent + 1
    path = guides_folder / "welcome.md"
    path.write_text(path.read_text().replace("title: Welcome to the Django community", "title: Welcome, newcomer"))
    changed = guides_publish(channels=CHANNELS, now=NOW)
    assert changed["onboarding"][0]["changed"] and puts() == sent + 2
    now_shown = httpx.get(url, headers=headers).json()
    assert now_shown["prompts"][0] == before["prompts"][0] and now_shown["prompts"][1]["id"] == ours["id"]
    assert "Welcome, newcomer" in {o["title"] for o in now_shown["prompts"][1]["options"]}
    assert len(now_shown["prompts"][1]["options"]) == 5


MANAGE_SERVER = 1 << 5


def _reports(state):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    return [a.data for a in found if a.key == "guides-publish"]


def test_r_guide_discord_without_manage_server_does_the_rest_then_fails_naming_it(world, guides_folder, caplog):
    [bot_role] = [r for r in world.discord_state()["roles"] if r.get("bot_role")]

    def owner_sets(permissions):
        answer = httpx.post(
            f"{world.discord_url}/_sandbox/roles", json={"role": bot_role["name"], "permissions": permissions}
        )
        assert answer.status_code == 200, answer.text

    owner_sets(int(bot_role["permissions"]) & ~MANAGE_SERVER)  # installed without Manage Server
    state = guides_publish(channels=CHANNELS, now=NOW, return_state=True)

    assert state.is_failed()
    with pytest.raises(FatalError) as failed:
        state.result()
    line = str(failed.value)
    assert "\n" not in line and line.startswith("guides-publish: discord welcome refused: ")
    assert "discord onboarding refused: " in line and line.count("the bot needs Manage Server") == 2
    # The guides are posted on both platforms, the Forum's welcome is set.
    with world.ledger.read() as session:
        assert sorted({(p.platform, p.slug) for p in shelf_ledger.posts(session)}) == sorted(
            (platform, guide.slug) for guide in out_guides(guides_folder) for platform in ("discourse", "discord")
        )
    forum = world.platforms.space("discourse").connector
    text = forum.client.get(f"/admin/customize/site_texts/{forum.WELCOME_TEXT}.json", what="welcome")
    assert "[Welcome to the Django community](" in text["site_text"]["value"]
    # The artifact lists every guide and the refusals; the log names the platform and the reason.
    [report] = _reports(state)
    assert report.count("| published |") == 10 and "## Refused" in report
    assert "| discord | welcome | the welcome screen: Discord refused (403, code 50013" in report
    assert "| discord | onboarding | the server's onboarding: Discord refused" in report
    warnings = [r.getMessage() for r in caplog.records if r.name == "charterflow.guides"]
    assert any(w.startswith("guides: discord refused the welcome step: ") and "Manage Server" in w for w in warnings)
    assert not any(world.discord_sb.token in w for w in warnings)
    sb = world.discord_sb
    headers = {"Authorization": f"Bot {sb.token}", "User-Agent": "DiscordBot (test, 1)"}
    screen = f"{world.discord_url}/api/v10/guilds/{sb.seed.guild_id}/welcome-screen"
    assert httpx.get(screen, headers=headers).json()["description"] is None

    # The permission granted: a re-run sets the welcome screen and the onboarding prompt, and
    # sends nothing else (no guide posted twice, the Forum's welcome not sent again).
    owner_sets(int(bot_role["permissions"]))
    writes = world.writes()
    again = guides_publish(channels=CHANNELS, now=NOW)
    assert {r["change"] for r in again["guides"]} == {"unchanged"}
    assert {w["platform"] for w in again["welcome"]} == {"discourse", "discord"}
    assert not refusals(again["welcome"], again["onboarding"])
    [onboarding] = again["onboarding"]
    assert onboarding["changed"] and onboarding["options"] == 5
    assert httpx.get(screen, headers=headers).json()["description"].startswith("New here?")
    sent = {k: n - writes.get(k, 0) for k, n in world.writes().items() if n != writes.get(k, 0)}
    assert sent == {
        "discord PATCH /guilds/{guild_id}/welcome-screen": 1,
        "discord PUT /guilds/{guild_id}/onboarding": 1,
    }
    writes = world.writes()
    guides_publish(channels=CHANNELS, now=NOW)
    assert world.writes() == writes  # and once only
