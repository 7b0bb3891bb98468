"""Sending one plain-text e-mail over SMTP (stdlib ``smtplib``).

A message's ``Message-ID`` is derived from the caller's idempotency key, so a message sent
again after a crash between sending and recording carries the same id (mail clients and
servers that dedupe on it show it once). Errors come back as the connectors' exception tree:
``RetriableError`` for temporary SMTP failures (4xx, connection problems), ``FatalError`` for
permanent ones (5xx, for example a refused recipient). The password never leaves its SecretStr
except into ``SMTP.login``.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.errors import FatalError, RetriableError

PLATFORM = "email"


class SmtpSettings(BaseSettings):
    """``CHARTERFLOW_SMTP_*``: where outcome e-mails to applicants are sent from."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_SMTP_", env_file=".env", extra="ignore")
    host: str | None = Field(
        default=None,
        description=(
            "SMTP server for e-mails to applicants; unset: no e-mail (under `charterflow up`, a "
            "loopback SMTP sandbox whose mailbox the inspector shows)."
        ),
    )
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587 submission, 465 TLS).")
    tls: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description=(
            "starttls (upgrade on connect, port 587), ssl (TLS from the start, port 465) or none "
            "(loopback sandboxes only)."
        ),
    )
    username: str | None = Field(default=None, description="SMTP login; unset: no login.")
    password: SecretStr | None = Field(default=None, description="SMTP password.")
    sender: str = Field(
        default="charterflow@localhost", description=("From address of e-mails to applicants, e.g. wg@example.org.")
    )
    timeout: float = Field(default=20.0, gt=0, description="Seconds to wait for the SMTP server.")


class SmtpMailer:
    """Sends plain-text e-mails through one SMTP server; a new connection per message (outcome
    e-mails are rare)."""

    name = PLATFORM

    def __init__(self, *, settings: SmtpSettings) -> None:
        if not settings.host:
            raise ValueError("SmtpMailer needs CHARTERFLOW_SMTP_HOST")
        self.settings = settings
        self.host: str = settings.host

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpMailer(host={s.host!r}, port={s.port}, tls={s.tls!r}, sender={s.sender!r})"

    @staticmethod
    def message_id(key: str) -> str:
        """The Message-ID of the message sent under ``key``."""
        return f"<cf-{hashlib.sha256(key.encode()).hexdigest()[:32]}@charterflow>"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.tls == "ssl":
            return smtplib.SMTP_SSL(self.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
        return smtplib.SMTP(self.host, s.port, timeout=s.timeout)

    def send(self, *, to: str, subject: str, text: str, key: str) -> dict[str, str]:
        """Send one message; returns ``{"message_id": ...}`` for the caller's record."""
        s = self.settings
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = s.sender, to, subject[:200]
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = self.message_id(key)
        message.set_content(text)
        try:
            with self._connect() as smtp:
                if s.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if s.username and s.password is not None:
                    smtp.login(s.username, s.password.get_secret_value())
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            what = f"SMTP {exc.smtp_code} sending {subject[:60]!r}"
            if 400 <= exc.smtp_code < 500:
                raise RetriableError(what, platform=PLATFORM, status=exc.smtp_code) from None
            raise FatalError(what, platform=PLATFORM, status=exc.smtp_code) from None
        except smtplib.SMTPRecipientsRefused:
            raise FatalError("SMTP server refused the recipient", platform=PLATFORM) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RetriableError(f"SMTP server unreachable ({type(exc).__name__})", platform=PLATFORM) from None
        return {"message_id": self.message_id(key)}
