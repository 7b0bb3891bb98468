"""Requests signed the way each platform signs them, and the gateway's settings with invented
secrets (the gateway tests' helpers; used by the flow and reliability tests too)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr
from sqlalchemy import select

from connectors.discourse.inbound import sign_body
from flows.inbox_routing import Route
from gateway.settings import GatewaySettings
from ledger import repo
from ledger.db import Ledger
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
        discourse_webhook_secret=SecretStr(DISCOURSE_SECRET),
        discord_public_key=DISCORD_PUBLIC,
        slack_signing_secret=SecretStr(SLACK_SECRET),
        discourse_applications_categories=APPLICATIONS_CATEGORY,
        discourse_ideas_categories=IDEAS_CATEGORY,
        form_secret=SecretStr("form-secret-for-tests"),
        dispatch=False,
    )
    values.update(overrides)
    return GatewaySettings.model_construct(**{**GatewaySettings().model_dump(), **values})


def inbox_rows(ledger: Ledger) -> list[InboxEvent]:
    """Every stored inbox event, oldest first."""
    with ledger.read() as s:
        return list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def discourse_request(
    event_id: int,
    *,
    event: str = "topic_created",
    category: str = APPLICATIONS_CATEGORY,
    secret: str = DISCOURSE_SECRET,
    body: bytes | None = None,
) -> tuple[dict[str, str], bytes]:
    """A webhook delivery as Discourse sends it (invented forum, invented people)."""
    if body is None:
        if event == "ping":
            payload: dict[str, Any] = {"ping": "OK"}
        else:
            payload = {
                "topic": {
                    "id": 1000 + event_id,
                    "title": "I would like to join the group",
                    "category_id": int(category),
                    "archetype": "regular",
                    "created_by": {"id": 55, "username": "quill_ash"},
                }
            }
        body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Discourse-Instance": "https://forum.example.org",
        "X-Discourse-Event-Id": str(event_id),
        "X-Discourse-Event-Type": event.split("_")[0],
        "X-Discourse-Event": event,
        "X-Discourse-Event-Signature": sign_body(secret, body),
    }
    return headers, body


def discord_request(payload: dict[str, Any], *, timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
    """An interaction signed with the invented application key."""
    body = json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = DISCORD_KEY.sign(stamp.encode() + body).hex()
    return {"Content-Type": "application/json", "X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp}, body


def discord_command(name: str, interaction_id: str = "1200000000000000001", **extra: Any) -> dict[str, Any]:
    """A slash-command interaction (type 2) from an invented member."""
    return {
        "type": 2,
        "id": interaction_id,
        "application_id": "1100000000000000001",
        "token": "tok-invented",
        "guild_id": "1000000000000000001",
        "channel_id": "1000000000000000002",
        "member": {"user": {"id": "400000000000000009", "username": "birch.rowan"}, "roles": []},
        "data": {"name": name, "type": 1, **extra},
    }


def slack_request(
    body: bytes,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    timestamp: int | None = None,
    secret: str = SLACK_SECRET,
) -> tuple[dict[str, str], bytes]:
    """A request signed with Slack's v0 scheme."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Signature": f"v0={mac}", "X-Slack-Request-Timestamp": stamp}, body


def slack_board_click(decision: str = "approve", proposal: str = "12", trigger: str = "trig-1") -> bytes:
    """A block_actions payload: a Board member presses a decision button."""
    payload = {
        "type": "block_actions",
        "trigger_id": trigger,
        "team": {"id": "T0INVENTED"},
        "user": {"id": "U0INVENTED1", "username": "hollis.board"},
        "channel": {"id": "C0BOARD01"},
        "container": {"message_ts": "1700000000.000100"},
        "response_url": "https://hooks.slack.com/actions/T0INVENTED/1/abc",
        "actions": [
            {
                "action_id": f"board_{decision}",
                "block_id": f"board_decision:{proposal}",
                "value": proposal,
                "action_ts": "1700000001.000200",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def store_pings(ledger: Ledger, keys: list[str]) -> list[int]:
    """Store a Forum ping event under each dedupe key (as the gateway would), in one transaction;
    their ids."""
    ids = []
    with ledger.transaction() as session:
        for key in keys:
            event, created = repo.inbox_put(
                session, dedupe_key=key, source="discourse", kind="ping", payload={"data": {}}, route=Route.PING
            )
            assert created, key
            ids.append(event.id)
    return ids
