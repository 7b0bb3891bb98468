"""`charterflow doctor` for Slack: read-only checks of the app's bot token and the Board channel.

- the token (``auth.test``);
- its scopes: Slack returns them in the ``x-oauth-scopes`` header of every Web API answer
  (https://api.slack.com/scopes); compared with :data:`REQUIRED_SCOPES`, what the connector's
  methods need;
- the bot is a member of the Board channel: ``conversations.history`` (``limit=1``) answers
  ``not_in_channel`` (public) or ``channel_not_found`` (private, or a wrong id) otherwise;
- the signing secret is set (its value is never shown);
- each channel the common room bridges (R-COMMS; ``rooms``): ``conversations.info`` finds it (the
  ``channels:read``/``groups:read`` scopes it needs join the required ones) and the bot is a member,
  as Slack sends an app events only from conversations its bot is in. The Events API subscription
  itself (``message.channels``/``message.groups``) no Web API method reads: the detail says so.

The connector's client returns answer bodies only, so this module asks through slack_sdk's
``WebClient`` itself to read the header.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from connectors.doctor import Check, failed, passed
from connectors.slack.settings import SlackSettings

__all__ = ["REQUIRED_SCOPES", "ROOM_SCOPES", "check"]

P = "slack"
# Scope → the connector methods that need it (see connectors/slack/README.md).
REQUIRED_SCOPES: dict[str, str] = {
    "chat:write": "chat.postMessage, chat.update",
    "im:write": "conversations.open (DMs)",
    "mpim:write": "conversations.open (group DMs)",
    "users:read": "users.lookupByEmail",
    "users:read.email": "users.lookupByEmail",
    "channels:history": "conversations.history in public channels",
    "groups:history": "conversations.history in private channels (the Board's)",
    "im:history": "conversations.history in DMs",
    "mpim:history": "conversations.history in group DMs",
}
# What the common room's channel check needs besides (connectors/slack/rooms.py).
ROOM_SCOPES: dict[str, str] = {
    "channels:read": "conversations.info on a public common-room channel",
    "groups:read": "conversations.info on a private common-room channel",
}
_APP_PAGE = "api.slack.com/apps → your app"


def _code(exc: SlackApiError) -> str:
    data = exc.response.data if isinstance(getattr(exc.response, "data", None), dict) else {}
    return str(data.get("error") or f"http_{getattr(exc.response, 'status_code', '?')}")[:60]


def check(settings: SlackSettings, rooms: Sequence[str] = ()) -> list[Check]:
    """Every check of the Slack app described by ``settings``; ``rooms``: the channel IDs the
    common room bridges."""
    web = WebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=settings.base_url,
        timeout=settings.timeout,
        logger=logging.getLogger("charterflow.connectors.slack.sdk"),
    )
    out: list[Check] = []
    try:
        answer: Any = web.api_call("auth.test")
    except SlackApiError as exc:
        code = _code(exc)
        out.append(
            failed(
                P,
                "token",
                f"auth.test answered {code}",
                f"set CHARTERFLOW_SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) from {_APP_PAGE} "
                "→ OAuth & Permissions (reinstall the app if it was revoked)",
            )
        )
        out.append(_signing(settings))
        return out
    except (URLError, OSError, http.client.HTTPException, SlackClientError) as exc:
        out.append(
            failed(
                P,
                "token",
                f"{settings.base_url} did not answer: {type(exc).__name__}",
                "check CHARTERFLOW_SLACK_BASE_URL and this machine's network access to it",
            )
        )
        out.append(_signing(settings))
        return out
    out.append(
        passed(
            P,
            "token",
            f"valid, bot {answer.get('user')!r} ({answer.get('user_id')}) in workspace {answer.get('team')!r}",
        )
    )

    out.append(_scopes(answer.headers, {**REQUIRED_SCOPES, **(ROOM_SCOPES if rooms else {})}))
    out.append(_board_channel(web, settings.board_channel))
    out.extend(_room(web, room) for room in rooms)
    out.append(_signing(settings))
    return out


def _scopes(headers: Any, required: Mapping[str, str]) -> Check:
    """The token's scopes, read from the ``x-oauth-scopes`` header, against ``required``."""
    header = next((v for k, v in (headers or {}).items() if k.lower() == "x-oauth-scopes"), None)
    if isinstance(header, list):
        header = ",".join(header)
    if header is None:
        return failed(
            P,
            "scopes",
            "Slack sent no x-oauth-scopes header, so the scopes cannot be read",
            f"check {_APP_PAGE} → OAuth & Permissions → Bot Token Scopes by hand: " + ", ".join(required),
        )
    granted = {s.strip() for s in str(header).split(",") if s.strip()}
    missing = [s for s in required if s not in granted]
    if missing:
        return failed(
            P,
            "scopes",
            "the token lacks " + ", ".join(f"{s} ({required[s]})" for s in missing),
            f"{_APP_PAGE} → OAuth & Permissions → Bot Token Scopes: add {', '.join(missing)}, then "
            "reinstall the app and set the new token",
        )
    return passed(P, "scopes", "has " + ", ".join(required))


def _board_channel(web: WebClient, channel: str) -> Check:
    """Whether the bot can read the Board channel's history."""
    try:
        web.api_call("conversations.history", params={"channel": channel, "limit": 1})
        return passed(P, "board channel", f"the bot is a member of {channel}")
    except SlackApiError as exc:
        code = _code(exc)
        fix = {
            "not_in_channel": "invite the app to the channel: /invite @<app name> in the Board's channel",
            "channel_not_found": "check CHARTERFLOW_SLACK_BOARD_CHANNEL (channel details → About → Channel ID); "
            "for a private channel, invite the app first (/invite @<app name>)",
            "missing_scope": "add the history scopes (see the scopes line) and reinstall the app",
        }.get(code, "see Slack's error code")
        return failed(P, "board channel", f"conversations.history on {channel} answered {code}", fix)
    except (URLError, OSError, http.client.HTTPException, SlackClientError) as exc:
        return failed(P, "board channel", f"no answer: {type(exc).__name__}", "check the network")


def _room(web: WebClient, channel: str) -> Check:
    """Whether the common room's ``channel`` exists for the app and its bot is in it."""
    name = f"common room {channel}"
    try:
        found = web.api_call("conversations.info", params={"channel": channel})["channel"]
    except SlackApiError as exc:
        code = _code(exc)
        fix = {
            "channel_not_found": "check the Slack channel ID in CHARTERFLOW_COMMONS_BRIDGES (channel details → About "
            "→ Channel ID); for a private channel, invite the app first (/invite @<app name>)",
            "missing_scope": "add channels:read and groups:read (see the scopes line) and reinstall the app",
        }.get(code, "see Slack's error code")
        return failed(P, name, f"conversations.info answered {code}", fix)
    except (URLError, OSError, http.client.HTTPException, SlackClientError) as exc:
        return failed(P, name, f"no answer: {type(exc).__name__}", "check the network")
    if not found.get("is_member"):
        return failed(
            P,
            name,
            f"the bot is not a member of #{found.get('name')}: Slack sends the app no message from it",
            f"invite the app: /invite @<app name> in #{found.get('name')}",
        )
    event = "message.groups" if found.get("is_private") else "message.channels"
    return passed(
        P,
        name,
        f"the bot is a member of #{found.get('name')}; its messages reach the gateway once the app subscribes "
        f"to the bot event {event} ({_APP_PAGE} → Event Subscriptions; no API reads it)",
    )


def _signing(settings: SlackSettings) -> Check:
    if settings.signing_secret is not None and settings.signing_secret.get_secret_value():
        return passed(P, "signing secret", "CHARTERFLOW_SLACK_SIGNING_SECRET is set")
    return failed(
        P,
        "signing secret",
        "CHARTERFLOW_SLACK_SIGNING_SECRET is unset: every Board button press is refused",
        f"{_APP_PAGE} → Basic Information → App Credentials → Signing Secret, into CHARTERFLOW_SLACK_SIGNING_SECRET",
    )
