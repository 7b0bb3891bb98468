"""The Slack tests' scaled time and a tiny stand-in for the gateway's ``POST /hooks/slack`` built
only from the connector's public pieces."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from connectors.errors import InvalidSignature
from connectors.sandboxkit import read_body
from connectors.slack.inbound import check_board_member

# One sandbox "second" lasts 20 ms: the ~1 message/s per channel limit becomes 50/s, and
# Retry-After: 1 is slept as 20 ms by connectors from ``sandbox.connect``.
TIME_FACTOR = 0.02


class MiniGateway:
    """An ASGI app doing what the gateway will do with a Board click, and recording it.

    verify → parse the Board action → check the Board list → allowed: update the message;
    denied: ephemeral "not allowed" reply. Every attempt goes to ``audit``.
    """

    def __init__(self, *, connector: Any, board: list[str], escalations: dict[str, Any]) -> None:
        self.connector = connector
        self.board = board
        self.escalations = escalations
        self.audit: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.app = self

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status = 200
        try:
            actions = self.connector.board_actions(headers=headers, body=body)
            resolved = self.connector.resolve_board(self.board)
            for action in actions:
                check = check_board_member(action, board=self.board, resolved=resolved)
                with self.lock:
                    self.audit.append(
                        {
                            "user": action.user_id,
                            "decision": action.decision.value,
                            "proposal": action.proposal_id,
                            "allowed": check.allowed,
                            "reason": check.reason,
                        }
                    )
                if not check.allowed:
                    self.connector.deny(action, check)
                    continue
                ref = f"{action.channel_id}:{action.message_ts}"
                self.connector.record_decision(
                    ref,
                    self.escalations[action.proposal_id],
                    decision=action.decision,
                    decided_by=action.user_id,
                    decided_at=datetime.now(UTC),
                )
        except InvalidSignature as exc:
            status = exc.status or 401
        payload = json.dumps({"ok": status == 200}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
