"""Where the sandbox served what Discord refuses, or sent what Discord does not send, on paths
charterflow depends on; and what the connector does with Discord's real answers there.

- Search Guild Messages is "restricted according to whether the MESSAGE_CONTENT Privileged Intent
  is enabled" (https://discord.com/developers/docs/resources/message#search-guild-messages), as
  List Guild Members is by Server Members: 403 50001. The sandbox had counted activity without it.
- An interaction from a DM carries ``user``, no ``member`` and no ``guild_id``
  (https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object);
  the sandbox had sent every interaction as a guild's.
- A first answer after the 3 s is "Unknown interaction" (10062); the sandbox took it for 15 min
  (https://discord.com/developers/docs/interactions/receiving-and-responding#responding-to-an-interaction).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from connectors.discord.client import DiscordAPIError
from connectors.discord.payloads import apply_modal, deferred
from connectors.discord.sandbox import DiscordSandbox, default_seed
from connectors.errors import AnswerElsewhere, FatalError

SEARCH = "GET /guilds/{guild_id}/messages/search"


def _get(box: Any, path: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bot {box.sandbox.token}", "User-Agent": "DiscordBot (https://example.invalid, 1)"}
    return httpx.get(f"{box.url}/api/v10{path}", params=params, headers=headers, timeout=10)


def test_message_search_without_the_message_content_intent_is_refused_and_not_asked_again(serve: Any) -> None:
    seed = default_seed()
    seed["application_flags"] = 1 << 15  # Server Members (limited) only
    box = serve(DiscordSandbox(seed=seed))
    refused = _get(box, f"/guilds/{box.sandbox.seed.guild_id}/messages/search", author_id="1")
    assert (refused.status_code, refused.json()["code"]) == (403, 50001)
    c = box.connect()
    cleo, dario = c.find_user("cleo_marsh"), c.find_user("dario_fenwick")
    with pytest.raises(FatalError, match="Message Content Intent") as err:
        c.activity(cleo)
    assert not isinstance(err.value, DiscordAPIError) and err.value.status == 403
    # The next member's count is unknown at once: no second 403 spent, the client not stopped.
    with pytest.raises(FatalError, match="Message Content Intent"):
        c.activity(dario)
    assert box.count(SEARCH) == 2  # the raw refusal above and the connector's one
    assert c.client.stopped is None and c.find_user("dario_fenwick") == dario
    # With the intent (the default seed) the same member's activity is counted.
    counted = serve(DiscordSandbox()).connect().activity(cleo)
    assert counted.post_count is not None and counted.post_count > 0


def test_an_interaction_from_a_dm_carries_the_user_and_no_guild(discord: Any) -> None:
    c = discord.connect()
    cleo = c.find_user("cleo_marsh")
    ref = c.direct_message_with_button(
        user=cleo, title="Please confirm", text="Press below.", button_label="Confirm", custom_id="cfc:t.1"
    )
    headers, body = discord.sandbox.signed_request(
        kind="component",
        payload={"user": "cleo_marsh", "custom_id": "cfc:t.1", "message_id": ref.id, "channel_id": ref.thread_id},
    )
    sent = json.loads(body)
    assert "member" not in sent and "guild_id" not in sent and sent["user"]["id"] == cleo.id
    assert sent["context"] == 1 and sent["authorizing_integration_owners"] == {"0": "0"}
    event = c.verify(headers=headers, body=body)
    assert (event.instance, event.attributes["user_id"], event.attributes["guild_id"]) == ("@me", cleo.id, "")
    # In a guild channel: the member (with its roles) and the guild, context 0.
    general = discord.sandbox.channel_id("general")
    _, body = discord.sandbox.signed_request(kind="idea", payload={"user": "cleo_marsh", "channel_id": general})
    sent = json.loads(body)
    assert "user" not in sent and sent["member"]["user"]["id"] == cleo.id and sent["context"] == 0
    assert sent["guild_id"] == discord.sandbox.seed.guild_id


def test_a_first_answer_after_the_3_seconds_is_unknown_interaction(serve: Any) -> None:
    box = serve(DiscordSandbox(settings={"interaction_timeout": 0.3}))
    c = box.connect()

    def pressed() -> Any:
        headers, body = box.sandbox.signed_request(kind="idea", payload={"user": "cleo_marsh"})
        return c.verify(headers=headers, body=body)

    c.callback(pressed(), deferred(ephemeral=True))  # in time: answered
    late = pressed()
    time.sleep(0.45)
    with pytest.raises(DiscordAPIError) as err:
        c.callback(late, deferred(ephemeral=True))
    assert (err.value.status, err.value.code) == (404, 10062)
    # Nothing answers it afterwards either: the person saw "This interaction failed".
    with pytest.raises(AnswerElsewhere):
        c.edit_original(late, "Done.")


def test_the_apply_modal_keeps_discords_modal_limits() -> None:
    # The sandbox checks only that a modal has a custom_id, a title and rows; Discord refuses the
    # whole answer past these (https://discord.com/developers/docs/components/reference#text-input:
    # a text input's label at most 45 characters, max_length 1 to 4000; a modal's title at most 45,
    # custom_ids at most 100, at most 5 rows), and /apply would then fail for every applicant.
    modal = apply_modal()["data"]
    inputs = [c for row in modal["components"] for c in row["components"]]
    assert 1 <= len(modal["title"]) <= 45 and 1 <= len(modal["custom_id"]) <= 100
    assert 1 <= len(modal["components"]) <= 5 and all(len(row["components"]) == 1 for row in modal["components"])
    for text_input in inputs:
        assert text_input["type"] == 4 and 1 <= len(text_input["label"]) <= 45
        assert 1 <= len(text_input["custom_id"]) <= 100 and 1 <= text_input["max_length"] <= 4000
    assert len({t["custom_id"] for t in inputs}) == len(inputs)


def test_a_slash_command_with_an_optional_option_before_a_required_one_is_refused(discord: Any) -> None:
    # "Required options must be listed before optional options": Discord refuses the whole bulk
    # overwrite (https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-structure),
    # so `charterflow discord register-commands` would register nothing.
    sb = discord.sandbox
    option = {"type": 3, "name": "note", "description": "Why"}
    bad = {"name": "idea-status", "type": 1, "description": "Change an idea's status"}
    bad["options"] = [{**option, "required": False}, {**option, "name": "status", "required": True}]
    refused = httpx.put(
        f"{discord.url}/api/v10/applications/{sb.seed.application_id}/commands",
        json=[bad],
        headers={"Authorization": f"Bot {sb.token}", "User-Agent": "DiscordBot (https://example.invalid, 1)"},
        timeout=10,
    )
    assert (refused.status_code, refused.json()["code"]) == (400, 50035)
    assert "required options first" in json.dumps(refused.json()["errors"])
    # Ours keep the order: every command registers.
    assert {c["name"] for c in discord.connect().register_commands(scope="global")} >= {"propose", "idea-status"}
