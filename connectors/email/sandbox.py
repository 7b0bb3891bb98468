"""A loopback SMTP server that keeps every message it receives in a mailbox (aiosmtpd, in its
own thread): what tests send real SMTP to, and what `charterflow up` runs when no SMTP host is
configured, its mailbox shown in the inspector. It accepts plain SMTP without login, so it
listens on 127.0.0.1 only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

from connectors.ports import unused_port


class _Keeper:
    def __init__(self, box: SmtpSandbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        self.box.keep(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(parsed.get("Subject", "")),
                "message_id": str(parsed.get("Message-ID", "")),
                "text": body.get_content() if body is not None else "",
                "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        return "250 Message accepted for delivery"


class SmtpSandbox:
    """``with SmtpSandbox() as box: box.port`` — SMTP on 127.0.0.1; ``box.messages()`` is the
    mailbox, oldest first."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        # lazy: start-up: aiosmtpd loads only when a sandbox is built (the gateway imports this package)
        from aiosmtpd.controller import Controller

        self.host = host
        self._messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._controller = Controller(_Keeper(self), hostname=host, port=port or unused_port(host))

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._controller.port)

    def keep(self, message: dict[str, Any]) -> None:
        """Add a received message to the mailbox."""
        with self._lock:
            self._messages.append(message)

    def messages(self) -> list[dict[str, Any]]:
        """A copy of the mailbox."""
        with self._lock:
            return [dict(m) for m in self._messages]

    def client_env(self) -> dict[str, str]:
        """The ``CHARTERFLOW_SMTP_*`` variables that point the mailer here."""
        return {
            "CHARTERFLOW_SMTP_HOST": self.host,
            "CHARTERFLOW_SMTP_PORT": str(self.port),
            "CHARTERFLOW_SMTP_TLS": "none",
        }

    def start(self) -> SmtpSandbox:
        """Start listening (returns once it accepts connections)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def __enter__(self) -> SmtpSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
