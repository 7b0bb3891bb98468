"""Fixtures of the gateway tests: a migrated SQLite ledger, the app with invented secrets, and
helpers that sign requests the way each platform does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr
from starlette.testclient import TestClient

from connectors.discourse.inbound import sign_body
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from gateway.settings import GatewaySettings
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import InboxEvent

DISCOURSE_SECRET = "whsec_invented_for_tests_0123456789"
SLACK_SECRET = "slack_signing_invented_0123456789abcdef"
DISCORD_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DISCORD_PUBLIC = DISCORD_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
APPLICATIONS_CATEGORY = "7"
IDEAS_CATEGORY = "9"


def gateway_settings(**overrides: Any) -> GatewaySettings:
    """Settings with invented secrets; nothing read from the environment."""
    values: dict[str, Any] = dict(
        discourse_webhook_secret=SecretStr(DISCOURSE_SECRET), discord_public_key=DISCORD_PUBLIC,
        slack_signing_secret=SecretStr(SLACK_SECRET), discourse_applications_categories=APPLICATIONS_CATEGORY,
        discourse_ideas_categories=IDEAS_CATEGORY, form_secret=SecretStr("form-secret-for-tests"),
        dispatch=False,
    )
    values.update(overrides)
    return GatewaySettings.model_construct(**{**GatewaySettings().model_dump(), **values})


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(lg)
    yield lg
    lg.dispose()


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    app = create_app(settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def inbox_rows(ledger: Ledger) -> list[InboxEvent]:
    """Every stored inbox event, oldest first."""
    from sqlalchemy import select

    with ledger.read() as s:
        return list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def discourse_request(event_id: int, *, event: str = "topic_created", category: str = APPLICATIONS_CATEGORY,
                      secret: str = DISCOURSE_SECRET, body: bytes | None = None) -> tuple[dict[str, str], bytes]:
    """A webhook delivery as Discourse sends it (invented forum, invented people)."""
    if body is None:
        if event == "ping":
            payload: dict[str, Any] = {"ping": "OK"}
        else:
            payload = {"topic": {"id": 1000 + event_id, "title": "I would like to join the group",
                                 "category_id": int(category), "archetype": "regular",
                                 "created_by": {"id": 55, "username": "quill_ash"}}}
        body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Discourse-Instance": "https://forum.example.org",
               "X-Discourse-Event-Id": str(event_id), "X-Discourse-Event-Type": event.split("_")[0],
               "X-Discourse-Event": event, "X-Discourse-Event-Signature": sign_body(secret, body)}
    return headers, body


def discord_request(payload: dict[str, Any], *, timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
    """An interaction signed with the invented application key."""
    body = json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = DISCORD_KEY.sign(stamp.encode() + body).hex()
    return {"Content-Type": "application/json", "X-Signature-Ed25519": signature,
            "X-Signature-Timestamp": stamp}, body


def discord_command(name: str, interaction_id: str = "1200000000000000001", **extra: Any) -> dict[str, Any]:
    """A slash-command interaction (type 2) from an invented member."""
    return {"type": 2, "id": interaction_id, "application_id": "1100000000000000001", "token": "tok-invented",
            "guild_id": "1000000000000000001", "channel_id": "1000000000000000002",
            "member": {"user": {"id": "400000000000000009", "username": "birch.rowan"}, "roles": []},
            "data": {"name": name, "type": 1, **extra}}


def slack_request(body: bytes, *, content_type: str = "application/x-www-form-urlencoded",
                  timestamp: int | None = None, secret: str = SLACK_SECRET) -> tuple[dict[str, str], bytes]:
    """A request signed with Slack's v0 scheme."""
    import hashlib
    import hmac

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Signature": f"v0={mac}",
            "X-Slack-Request-Timestamp": stamp}, body


def slack_board_click(decision: str = "approve", proposal: str = "12", trigger: str = "trig-1") -> bytes:
    """A block_actions payload: a Board member presses a decision button."""
    payload = {"type": "block_actions", "trigger_id": trigger, "team": {"id": "T0INVENTED"},
               "user": {"id": "U0INVENTED1", "username": "hollis.board"},
               "channel": {"id": "C0BOARD01"}, "container": {"message_ts": "1700000000.000100"},
               "response_url": "https://hooks.slack.com/actions/T0INVENTED/1/abc",
               "actions": [{"action_id": f"board_{decision}", "block_id": f"board_decision:{proposal}",
                            "value": proposal, "action_ts": "1700000001.000200"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.fixture
def directories() -> Iterator[dict[str, Any]]:
    """The Forum and Discord sandboxes (their default invented sites) on 127.0.0.1, connected:
    ``discourse`` and ``discord`` → the real connectors, used as the form's Directory."""
    from connectors.discord.connector import DiscordConnector
    from connectors.discourse.connector import DiscourseConnector
    from tests.connectors.cf_loopback import LoopbackServer

    forum_sb, discord_sb = DiscourseConnector.sandbox(), DiscordConnector.sandbox()
    with LoopbackServer(forum_sb.app) as f_srv, LoopbackServer(discord_sb.app) as d_srv:
        forum, discord = forum_sb.connect(f_srv.url), discord_sb.connect(d_srv.url)
        yield {"discourse": forum, "discord": discord}
        forum.close()
        discord.close()


@pytest.fixture
def looked_up(ledger: Ledger, directories: dict[str, Any]) -> Iterator[TestClient]:
    """The gateway whose form looks usernames up on the sandboxes."""
    from gateway.form import UsernameLookup

    app = create_app(settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher(),
                     lookup=UsernameLookup(directories))
    with TestClient(app, base_url="http://testserver") as c:
        yield c
