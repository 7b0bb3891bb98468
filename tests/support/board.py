"""The Board flow tests' world (a pytest plugin: ``tests/conftest.py`` registers it): the
membership tests' seeded working group (Forum and Discord sandboxes, ledger, the session's
Prefect server) plus the Slack sandbox, the Board list in the ledger, and the real gateway on
127.0.0.1 receiving the Board's clicks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from connectors.slack.sandbox import SlackSandbox
from flows import inbox
from flows.board.common import use_slack
from flows.board.decision import handle_board_decision
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from ledger.models import InboxEvent
from ledger.roster import import_roster, parse_roster
from tests.support.gateway import gateway_settings
from tests.support.membership import NOW, World
from tests.support.net import LoopbackServer

BOARD_CHANNEL = "C0BOARD01"
WREN, TOBIN, PELLA, OSSIAN = "U0WREN001", "U0TOBI002", "U0PELL003", "U0OSSI004"

# Invented Board members: Wren is known by Slack id, Tobin by e-mail only (resolved through
# users.lookupByEmail), Pella by Slack id; Ossian is in the workspace but not on the Board list.
ROSTER = f"""
[roster]
format = 1

[lists]
board_members = ["wren_halloway", "tobin_ashgrove", "pella_marchetti"]

[[person]]
handle = "wren_halloway"
name = "Wren Halloway"
slack = {{ id = "{WREN}" }}
membership = "none"

[[person]]
handle = "tobin_ashgrove"
name = "Tobin Ashgrove"
email = "tobin.ashgrove@example.org"
membership = "none"

[[person]]
handle = "pella_marchetti"
name = "Pella Marchetti"
slack = {{ id = "{PELLA}" }}
membership = "none"

[[person]]
handle = "ossian_bright"
name = "Ossian Bright"
slack = {{ id = "{OSSIAN}" }}
membership = "none"
"""


@dataclass
class Board:
    """The world plus Slack and the gateway."""

    world: World
    slack_sb: SlackSandbox
    slack_url: str
    slack: Any
    gateway_url: str

    def slack_state(self) -> dict[str, Any]:
        return httpx.get(f"{self.slack_url}/_sandbox/state", timeout=10).json()

    def board_messages(self) -> list[dict[str, Any]]:
        """Top-level messages in the Board channel."""
        return [
            m
            for m in self.slack_state()["messages"].get(BOARD_CHANNEL, [])
            if not m.get("thread_ts") or m.get("thread_ts") == m["ts"]
        ]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        """Replies in the thread of ``ts``."""
        return [
            m
            for m in self.slack_state()["messages"].get(BOARD_CHANNEL, [])
            if m.get("thread_ts") == ts and m["ts"] != ts
        ]

    def slack_writes(self) -> dict[str, int]:
        counts = self.slack_state()["requests"]
        return {k: v for k, v in counts.items() if "chat." in k or "actions" in k}

    def click(self, *, user: str, ts: str, action: str) -> tuple[dict[str, str], bytes]:
        """The signed request Slack sends when ``user`` presses ``board_<action>``."""
        payload = self.slack_sb.block_actions_payload(
            self.slack_url, user=user, channel=BOARD_CHANNEL, ts=ts, action_id=f"board_{action}"
        )
        return self.slack_sb.signed_request(kind="block_actions", payload=payload)

    def deliver(self, request: tuple[dict[str, str], bytes]) -> int:
        """POST a signed request to the gateway; the inbox event it is stored as."""
        headers, body = request
        response = httpx.post(f"{self.gateway_url}/hooks/slack", content=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        with self.world.ledger.read() as session:
            return session.scalars(
                select(InboxEvent.id)
                .where(InboxEvent.route == inbox.Route.BOARD_DECISION)
                .order_by(InboxEvent.id.desc())
            ).first()


@pytest.fixture
def board(world: World) -> Iterator[Board]:
    """The seeded WG, the Board in the ledger and on Slack, and the gateway."""
    sandbox = SlackSandbox(time_factor=0.02)
    with world.ledger.transaction() as session:
        import_roster(
            session,
            parse_roster(ROSTER, charter=world.platforms.charter),
            charter=world.platforms.charter,
            actor="operator",
            at=NOW,
        )
    # flows/inbox.py registers the real handler; the tests rely on that registration.
    assert inbox.HANDLERS[inbox.Route.BOARD_DECISION] is handle_board_decision
    app = create_app(
        settings=gateway_settings(slack_signing_secret=SecretStr(sandbox.signing_secret)),
        ledger=world.ledger,
        dispatcher=StoreOnlyDispatcher(),
        charter=world.platforms.charter,
        confirm_secret="test-only-secret",
    )
    with LoopbackServer(sandbox.app) as s_srv, LoopbackServer(app) as g_srv:
        slack = sandbox.connect(s_srv.url)
        with use_slack(slack):
            yield Board(world=world, slack_sb=sandbox, slack_url=s_srv.url, slack=slack, gateway_url=g_srv.url)


@contextmanager
def without_endorsement(world: World) -> Iterator[None]:
    """A charter that asks for no endorsement vote inside the block: proposals go straight to
    the Board."""
    charter = world.platforms.charter
    endorsement = charter.ballots.endorsement.model_copy(update={"required": False})
    world.platforms.charter = charter.model_copy(
        update={"ballots": charter.ballots.model_copy(update={"endorsement": endorsement})}
    )
    try:
        yield
    finally:
        world.platforms.charter = charter
