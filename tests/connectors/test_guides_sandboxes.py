"""R-GUIDE in the sandboxes: Discord's welcome screen and server onboarding and the Forum's
welcome message (a site text) validate what they are sent as the platforms do, and refuse who
may not change them (Discord: a bot without Manage Server, or Manage Roles for the onboarding)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.discord.client import MissingPermissions
from connectors.discord.connector import DiscordConnector
from connectors.discord.sandbox import ADMINISTRATOR, DiscordSandbox, default_seed
from connectors.discord.sandbox_welcome import MANAGE_GUILD


def test_discord_welcome_screen_validates_like_discord(serve: Any) -> None:
    box = serve(DiscordConnector.sandbox())
    sb = box.sandbox
    url = f"{box.url}/api/v10/guilds/{sb.seed.guild_id}/welcome-screen"
    headers = {"Authorization": f"Bot {sb.token}", "User-Agent": "DiscordBot (test, 1)"}
    general = sb.channel_id("general")
    assert httpx.get(url, headers=headers).json() == {"description": None, "welcome_channels": []}
    too_long = httpx.patch(url, headers=headers, json={"description": "x" * 141})
    assert too_long.status_code == 400 and too_long.json()["code"] == 50035
    unknown = httpx.patch(url, headers=headers, json={"welcome_channels": [{"channel_id": "42", "description": "d"}]})
    assert unknown.status_code == 400 and "welcome_channels.0.channel_id" in unknown.json()["errors"]
    empty = httpx.patch(url, headers=headers, json={"welcome_channels": [{"channel_id": general, "description": ""}]})
    assert empty.status_code == 400
    assert httpx.patch(url, headers={**headers, "Authorization": "Bot wrong"}, json={}).status_code == 401
    assert httpx.get(url, headers=headers).json()["description"] is None  # nothing was changed
    connector = box.connect()
    connector.set_welcome(summary="New here? Start with the guides.", guides=[], channel="general")
    shown = httpx.get(url, headers=headers).json()
    assert shown["description"] == "New here? Start with the guides."
    assert shown["welcome_channels"][0]["channel_id"] == general
    connector.close()


def test_discord_onboarding_validates_like_discord_and_put_replaces_what_it_names(serve: Any) -> None:
    box = serve(DiscordSandbox(time_scale=0.01))  # more requests than the route's bucket holds
    sb = box.sandbox
    url = f"{box.url}/api/v10/guilds/{sb.seed.guild_id}/onboarding"
    headers = {"Authorization": f"Bot {sb.token}", "User-Agent": "DiscordBot (test, 1)"}
    general = sb.channel_id("general")
    empty = {"guild_id": sb.seed.guild_id, "prompts": [], "default_channel_ids": [], "enabled": False, "mode": 0}
    assert httpx.get(url, headers=headers).json() == empty
    option = {"title": "Python", "description": "Talk Python", "channel_ids": [general]}
    prompt = {"id": "1200000000000000001", "title": "What brings you here?", "options": [option]}

    def refused(body: Any, **more: Any) -> dict[str, Any]:
        answer = httpx.put(
            url, headers={**headers, **more}, **({"content": body} if isinstance(body, bytes) else {"json": body})
        )
        assert answer.status_code in (400, 401), answer.text
        return {"status": answer.status_code, **answer.json()}

    # Malformed, oversized, unknown ids, unauthorized: refused, nothing changed.
    assert refused(b"{not json", **{"content-type": "application/json"})["code"] == 50109
    assert refused([prompt])["code"] == 50035
    assert "prompts" in refused({"prompts": [prompt] * 16})["errors"]
    assert "prompts.0.id" in refused({"prompts": [{**prompt, "id": "first"}]})["errors"]
    assert (
        "prompts.0.options.0.title"
        in refused({"prompts": [{**prompt, "options": [{**option, "title": "x" * 51}]}]})["errors"]
    )
    unknown = {**prompt, "options": [{**option, "channel_ids": ["42"]}]}
    assert "prompts.0.options.0.channel_ids" in refused({"prompts": [unknown]})["errors"]
    assert refused({"prompts": [prompt]}, authorization="Bot wrong")["status"] == 401
    # Onboarding on needs 7 default channels (Discord's constraint).
    assert refused({"enabled": True, "default_channel_ids": [general]})["code"] == 350000
    assert httpx.get(url, headers=headers).json() == empty

    shown = httpx.put(url, headers=headers, json={"prompts": [prompt], "default_channel_ids": [general]}).json()
    [kept] = shown["prompts"]
    assert kept["id"] == prompt["id"] and kept["options"][0]["id"]  # an option sent without an id gets one
    assert kept["options"][0]["emoji"] == {"id": None, "name": None, "animated": False}
    # A PUT naming only `mode` keeps the prompts and default channels.
    again = httpx.put(url, headers=headers, json={"mode": 1}).json()
    assert again["prompts"] == shown["prompts"] and again["default_channel_ids"] == [general] and again["mode"] == 1


def test_discord_welcome_and_onboarding_need_manage_server(serve: Any) -> None:
    seed = default_seed()
    bot_role = next(r for r in seed["roles"] if r.get("bot_role"))
    bot_role["permissions"] &= ~MANAGE_GUILD  # installed without Manage Server
    box = serve(DiscordSandbox(seed=seed, time_scale=0.01))  # more requests than the bucket holds
    sb = box.sandbox
    api = f"{box.url}/api/v10/guilds/{sb.seed.guild_id}"
    headers = {"Authorization": f"Bot {sb.token}", "User-Agent": "DiscordBot (test, 1)"}
    screen = {"description": "New here?", "welcome_channels": [], "enabled": True}
    onboarding = {"default_channel_ids": [sb.channel_id("general")]}

    def answers() -> tuple[int, int]:
        welcome = httpx.patch(f"{api}/welcome-screen", headers=headers, json=screen)
        prompts = httpx.put(f"{api}/onboarding", headers=headers, json=onboarding)
        for refused in (r for r in (welcome, prompts) if r.status_code == 403):
            assert refused.json() == {"message": "Missing Permissions", "code": 50013}
        return welcome.status_code, prompts.status_code

    def owner_sets(role: str, permissions: Any) -> httpx.Response:
        return httpx.post(f"{box.url}/_sandbox/roles", json={"role": role, "permissions": permissions}, timeout=10)

    assert answers() == (403, 403)
    assert httpx.get(f"{api}/welcome-screen", headers=headers).json()["description"] is None  # nothing changed
    assert httpx.get(f"{api}/onboarding", headers=headers).json()["default_channel_ids"] == []
    connector = box.connect()
    with pytest.raises(MissingPermissions, match=r"the welcome screen: .*50013.*the bot needs Manage Server \("):
        connector.set_welcome(summary="New here?", guides=[], channel="general")
    with pytest.raises(MissingPermissions, match="the bot needs Manage Server and Manage Roles"):
        connector.keep_onboarding_prompt(title="Guides", options=[("Asking", "")], channel="general")
    connector.close()

    # @everyone's permissions count; the onboarding needs Manage Roles too; Administrator holds all.
    assert owner_sets("@everyone", MANAGE_GUILD).json()["permissions"] == str(MANAGE_GUILD)
    assert answers() == (200, 200)
    owner_sets("@everyone", 0)
    owner_sets(bot_role["name"], MANAGE_GUILD)
    assert answers() == (200, 403)
    owner_sets(bot_role["name"], ADMINISTRATOR)
    assert answers() == (200, 200)
    assert owner_sets("no-such-role", 0).json()["code"] == 10011
    assert owner_sets(bot_role["name"], "all").status_code == 400


def test_forum_welcome_message_is_an_admin_site_text(discourse: Any) -> None:
    connector = discourse.connect()
    text_id = connector.WELCOME_TEXT
    connector.set_welcome(summary="Welcome!", guides=[("Asking", "https://forum.example.org/t/asking/3")])
    shown = connector.client.get(f"/admin/customize/site_texts/{text_id}.json", what="site text")
    assert shown["site_text"]["value"] == "Welcome!\n\n- [Asking](https://forum.example.org/t/asking/3)"
    sb = discourse.sandbox

    def put(path: str, body: dict[str, Any], user: str = "system") -> httpx.Response:
        return httpx.put(f"{discourse.url}{path}", json=body, headers={"Api-Key": sb.api_key, "Api-Username": user})

    assert put(f"/admin/customize/site_texts/{text_id}.json", {}).status_code == 400
    assert put("/admin/customize/site_texts/nope.json", {"site_text": {"value": "x"}}).status_code == 404
    # A dotted id may be one of Discourse's texts: not emulated, never "not found".
    other = put("/admin/customize/site_texts/js.topic.create.json", {"site_text": {"value": "x"}})
    assert other.status_code == 501 and other.json()["error_type"] == "not_emulated"
    member = sb.samples.username  # not an admin: the admin route does not exist for them
    assert put(f"/admin/customize/site_texts/{text_id}.json", {"site_text": {"value": "x"}}, member).status_code == 404
    assert connector.client.get(f"/admin/customize/site_texts/{text_id}.json", what="t")["site_text"][
        "value"
    ].startswith("Welcome!")
    connector.close()
