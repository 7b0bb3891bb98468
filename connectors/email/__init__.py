"""E-mail to applicants over SMTP: :class:`SmtpMailer` (stdlib ``smtplib``; settings
``CHARTERFLOW_SMTP_*``) and :class:`SmtpSandbox`, a loopback SMTP server (aiosmtpd) that keeps
what it receives in a mailbox, used by tests and by `charterflow up` when no SMTP host is set."""

from __future__ import annotations

from connectors.email.mailer import SmtpMailer, SmtpSettings
from connectors.email.sandbox import SmtpSandbox

__all__ = ["SmtpMailer", "SmtpSandbox", "SmtpSettings"]
