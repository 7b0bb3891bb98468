"""The three platforms' ``Inbound`` verifiers, built from the gateway settings.

Each is the connector's own (``connectors.<platform>.inbound``/``interactions``); a platform
whose secret is unset or whose connector module does not import gets ``None`` plus the reason,
and its route answers 503 "connector not configured" without touching the request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import SecretStr

from connectors.base import Inbound, url_instance
from gateway.settings import GatewaySettings

log = logging.getLogger("charterflow.gateway")

# The signature headers of each platform: a request without them is refused (401) before the
# body is read.
SIGNATURE_HEADERS = {
    "discourse": ("x-discourse-event-signature",),
    "discord": ("x-signature-ed25519", "x-signature-timestamp"),
    "slack": ("x-slack-signature", "x-slack-request-timestamp"),
}
# Content types each platform sends (https://meta.discourse.org/t/49045, Discord interactions,
# Slack interactivity = form-encoded, Slack Events API = JSON). A Discourse webhook set to
# content type 2 is labelled form-encoded but its body is the same signed JSON
# (app/jobs/regular/emit_web_hook_event.rb, build_webhook_body), so it is taken too.
CONTENT_TYPES = {
    "discourse": ("application/json", "application/x-www-form-urlencoded"),
    "discord": ("application/json",),
    "slack": ("application/x-www-form-urlencoded", "application/json"),
}


@dataclass(frozen=True, kw_only=True)
class Verifiers:
    """One verifier per platform, or why there is none."""

    by_platform: dict[str, Inbound | None]
    problems: dict[str, str]

    def get(self, platform: str) -> Inbound | None:
        """The verifier of ``platform`` (None: not configured)."""
        return self.by_platform.get(platform)


def build_verifiers(settings: GatewaySettings) -> Verifiers:
    """Build each configured verifier; never raises (a problem disables that route only)."""
    found: dict[str, Inbound | None] = {}
    problems: dict[str, str] = {}

    def attempt(name: str, secret_set: bool, env: str, build) -> None:
        if not secret_set:
            found[name], problems[name] = None, f"{env} is not set"
            return
        try:
            found[name] = build()
        except Exception as exc:  # noqa: BLE001 - an unusable connector disables its route only
            found[name] = None
            # The message names the type and the setting, never the secret's value.
            problems[name] = f"cannot build the {name} verifier ({type(exc).__name__}); check {env}"
            log.warning("gateway: %s", problems[name])

    def discourse() -> Inbound:
        # lazy: optional: a connector module that does not import disables its route only
        from connectors.discourse.inbound import DiscourseWebhookVerifier

        # attempt() builds a verifier only when its secret is set
        return DiscourseWebhookVerifier(
            secret=settings.discourse_webhook_secret or SecretStr(""), instance=url_instance(settings.discourse_url)
        )

    def discord() -> Inbound:
        # lazy: optional: as above; start-up: PyNaCl loads only when Discord is configured
        from connectors.discord.interactions import InteractionVerifier

        return InteractionVerifier(public_key=settings.discord_public_key or "")

    def slack() -> Inbound:
        # lazy: optional: as above; start-up: slack_sdk (~6% of importing gateway.app) only when Slack is set
        from connectors.slack.inbound import SlackRequestVerifier

        return SlackRequestVerifier(signing_secret=settings.slack_signing_secret or SecretStr(""))

    secret = settings.discourse_webhook_secret
    attempt("discourse", bool(secret and secret.get_secret_value()), "CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET", discourse)
    attempt("discord", bool(settings.discord_public_key), "CHARTERFLOW_DISCORD_PUBLIC_KEY", discord)
    secret = settings.slack_signing_secret
    attempt("slack", bool(secret and secret.get_secret_value()), "CHARTERFLOW_SLACK_SIGNING_SECRET", slack)
    return Verifiers(by_platform=found, problems=problems)
