"""The Slack connector: Messenger and Inbound for the DSF Board's workspace.

Built on ``slack_sdk.WebClient`` (``connectors.slack.client``); messages are built by the pure
functions in ``connectors.slack.blocks``; inbound requests are verified by
``connectors.slack.inbound``. Methods used and their quirks: ``specs/API-NOTES.md`` section 3.

Idempotency: a call with a ``key`` stamps the message with Slack message metadata
(https://api.slack.com/metadata/using) and, before posting, looks for a message carrying that
key among the channel's latest 100 messages (or in the thread), so a repeated call, or a retry
after a dropped connection, returns the first message instead of posting twice.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from connectors.base import Capability, Closing, InboundEvent, MessageRef, UserRef
from connectors.errors import ConfigError, FatalError, RetriableError
from connectors.slack.blocks import (
    BoardDecision,
    BoardEscalation,
    SlackMessage,
    board_escalation,
    decision_update,
    not_allowed_reply,
    plain_message,
)
from connectors.slack.client import PLATFORM, SlackApiClient, SlackFatalError
from connectors.slack.inbound import BoardAction, BoardCheck, SlackRequestVerifier, parse_board_actions
from connectors.slack.rooms import SlackRooms
from connectors.slack.settings import CHANNEL_ID, SlackSettings

__all__ = ["SlackConnector", "METADATA_EVENT_TYPE", "split_ref"]

log = logging.getLogger("charterflow.connectors.slack")

METADATA_EVENT_TYPE = "charterflow_message"
_HISTORY_PAGE = 100
_MAX_THREAD_PAGES = 10
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def split_ref(ref: MessageRef | str) -> tuple[str, str]:
    """``(channel, ts)`` of a ``MessageRef`` id/thread id (``"C0123:1712345678.000100"``)."""
    text = ref.id if isinstance(ref, MessageRef) else str(ref)
    channel, sep, ts = text.partition(":")
    if not sep or not CHANNEL_ID.match(channel) or not re.match(r"^\d+\.\d+$", ts):
        raise ValueError(f"not a Slack message reference (channel:ts): {text!r}")
    return channel, ts


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


class SlackConnector(SlackRooms, Closing):
    """Talks to one Slack workspace as the app's bot user.

    Build it with ``SlackConnector.from_env()`` or ``SlackConnector(settings=...)``; ``sleep``
    (retry waits), ``clock`` (the verifier's Unix time) and ``rng`` (jitter) are for tests.
    """

    name: ClassVar[str] = "slack"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.MESSENGER, Capability.INBOUND})
    # The Board's channel, never a community platform the WG runs on (flows.platforms).
    community: ClassVar[bool] = False
    docs_url: ClassVar[str] = "https://api.slack.com/web"

    def __init__(
        self,
        *,
        settings: SlackSettings,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.client = SlackApiClient(
            token=settings.bot_token,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_rate_limit_retries=settings.max_rate_limit_retries,
            max_retries=settings.max_retries,
            max_wait=settings.max_wait,
            sleep=sleep,
            rng=rng,
            extra_secrets=(settings.signing_secret,),
        )
        self._rng = rng or random.Random()
        self._verifier = (
            SlackRequestVerifier(signing_secret=settings.signing_secret, clock=clock)
            if settings.signing_secret is not None and settings.signing_secret.get_secret_value()
            else None
        )
        self._lock = threading.Lock()
        self._identity: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"SlackConnector(base_url={self.settings.base_url!r}, board_channel={self.settings.board_channel!r})"

    @classmethod
    def from_env(cls, **overrides: Any) -> SlackConnector:
        """Build from ``CHARTERFLOW_SLACK_*`` (and ``.env``); ``ConfigError`` naming what is wrong."""
        return cls(settings=SlackSettings.load(**overrides))

    @classmethod
    def sandbox(cls, *, seed: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """A ``SlackSandbox`` (a loopback emulator of the Web API methods used here)."""
        # lazy: start-up: the sandbox (Starlette, its seed data) loads only when one is asked for
        from connectors.slack.sandbox import SlackSandbox

        return SlackSandbox(seed=seed, **options)

    def close(self) -> None:
        """Nothing to release: slack_sdk's urllib transport opens a connection per call."""

    # ----------------------------------------------------------------------------------------
    # identity

    def auth_test(self) -> dict[str, Any]:
        """Who the token belongs to (``auth.test``: team, bot user, workspace URL); cached."""
        with self._lock:
            if self._identity is not None:
                return dict(self._identity)
        identity = self.client.call("auth.test", what="the bot token")
        with self._lock:
            self._identity = identity
        return dict(identity)

    @property
    def instance(self) -> str:
        """The workspace's team id (``Instanced``), from ``auth.test`` (read once); ``""``
        while Slack cannot be asked (a property must not raise: ``isinstance`` reads it)."""
        try:
            return str(self.auth_test().get("team_id") or "")
        except (RetriableError, FatalError):
            return ""

    def _permalink(self, channel: str, ts: str) -> str | None:
        try:
            url = str(self.auth_test().get("url") or "")
        except (RetriableError, FatalError):
            return None  # the message was sent; a missing link must not make the caller resend it
        if not url:
            return None
        # The web permalink form (https://api.slack.com/methods/chat.getPermalink shows it).
        return f"{url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"

    def _ref(self, channel: str, ts: str, thread_ts: str | None) -> MessageRef:
        return MessageRef(
            platform=PLATFORM,
            id=f"{channel}:{ts}",
            thread_id=f"{channel}:{thread_ts or ts}",
            url=self._permalink(channel, ts),
        )

    # ----------------------------------------------------------------------------------------
    # sending

    def _check_channel(self, channel: str) -> str:
        channel = (channel or "").strip()
        if not CHANNEL_ID.match(channel):
            raise FatalError(
                f"Slack channel {channel!r} is not a channel ID (C…/G…/D…); names are not accepted",
                platform=PLATFORM,
            )
        return channel

    def _find_keyed(self, channel: str, digest: str, thread_ts: str | None) -> MessageRef | None:
        """The message stamped with ``digest`` in ``channel`` (or the thread), if there is one."""
        if thread_ts is None:
            pages = [
                self.client.call(
                    "conversations.history",
                    what=f"latest messages of {channel}",
                    params={"channel": channel, "limit": _HISTORY_PAGE, "include_all_metadata": "true"},
                )
            ]
        else:
            pages, cursor = [], ""
            for _ in range(_MAX_THREAD_PAGES):
                params = {"channel": channel, "ts": thread_ts, "limit": 200, "include_all_metadata": "true"}
                if cursor:
                    params["cursor"] = cursor
                page = self.client.call("conversations.replies", what=f"thread {thread_ts} in {channel}", params=params)
                pages.append(page)
                cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
                if not cursor:
                    break
        for page in pages:
            for message in page.get("messages") or []:
                meta = message.get("metadata") or {}
                if (
                    meta.get("event_type") == METADATA_EVENT_TYPE
                    and (meta.get("event_payload") or {}).get("key") == digest
                ):
                    return self._ref(channel, str(message["ts"]), thread_ts)
        return None

    def send(
        self,
        *,
        channel: str,
        message: SlackMessage,
        key: str | None = None,
        thread_ts: str | None = None,
    ) -> MessageRef:
        """Post a built ``message`` to ``channel`` (an ID), in ``thread_ts``'s thread if given.

        With ``key``, posts at most once (see the module docstring). 429s wait and retry (the
        message is not lost); a 5xx or dropped connection re-reads the channel before retrying
        when there is a key, and raises ``RetriableError(ambiguous=True)`` when there is none.
        """
        channel = self._check_channel(channel)
        what = f"message to {channel}" + (f" (thread {thread_ts})" if thread_ts else "")
        body: dict[str, Any] = {"channel": channel, **message.payload(), "unfurl_links": False, "unfurl_media": False}
        if thread_ts:
            body["thread_ts"] = thread_ts
        digest = _key_digest(key) if key is not None else None
        if digest is not None:
            body["metadata"] = {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": digest}}
        failures = 0
        while True:
            try:
                if digest is not None:
                    found = self._find_keyed(channel, digest, thread_ts)
                    if found is not None:
                        return found
                data = self.client.call_once("chat.postMessage", what=what, json=body)
                return self._ref(str(data.get("channel") or channel), str(data["ts"]), thread_ts)
            except RetriableError as exc:
                # Without a key nothing can tell whether a failed post landed: the caller decides.
                # A 429 here has already waited through every retry the settings allow.
                if digest is None or exc.status == 429 or failures >= self.settings.max_retries:
                    raise
                failures += 1
                delay = min(8.0, 0.5 * 2 ** (failures - 1)) * (0.5 + self._rng.random() / 2)
                log.warning(
                    "slack: %s; re-reading %s before retry %d in %.2fs",
                    self.client.redact(exc),
                    channel,
                    failures,
                    delay,
                )
                self.client.sleep(delay)

    def update(self, ref: MessageRef | str, message: SlackMessage) -> MessageRef:
        """Replace the text and blocks of one of the app's messages (``chat.update``)."""
        channel, ts = split_ref(ref)
        data = self.client.call(
            "chat.update", what=f"message {ts} in {channel}", json={"channel": channel, "ts": ts, **message.payload()}
        )
        thread = ref.thread_id.partition(":")[2] if isinstance(ref, MessageRef) else None
        return self._ref(str(data.get("channel") or channel), str(data.get("ts") or ts), thread)

    # ----------------------------------------------------------------------------------------
    # Messenger

    def post(self, *, channel: str, title: str, text: str, key: str | None = None) -> MessageRef:
        """Post a titled message to ``channel`` (a channel ID); a new thread starts at it."""
        return self.send(channel=channel, message=plain_message(title=title, text=text), key=key)

    def reply(self, *, thread_id: str, text: str, key: str | None = None) -> MessageRef:
        """Reply in the thread ``thread_id`` (``MessageRef.thread_id``: ``"C…:ts"``)."""
        channel, ts = split_ref(thread_id)
        return self.send(channel=channel, message=plain_message(title="", text=text), key=key, thread_ts=ts)

    def open_dm(self, users: Sequence[str]) -> str:
        """The DM (one user) or group DM (several) channel with ``users`` (``conversations.open``)."""
        ids = sorted({u.strip() for u in users if u and u.strip()})
        if not ids:
            raise ValueError("a direct message needs at least one recipient")
        data = self.client.call(
            "conversations.open", what=f"DM with {', '.join(ids)}", params={"users": ",".join(ids), "return_im": "true"}
        )
        return str((data.get("channel") or {})["id"])

    def direct_message(self, *, recipients: Sequence[str], title: str, text: str, key: str | None = None) -> MessageRef:
        """Message ``recipients`` (Slack user ids or e-mail addresses) privately, together."""
        names = [r.strip() for r in recipients if r and r.strip()]
        if not names:
            raise ValueError("a direct message needs at least one recipient")
        ids = [self.find_user_by_email(n).id if "@" in n else n for n in names]
        bad = [i for i in ids if not _USER_ID.match(i)]
        if bad:
            raise FatalError(f"not Slack user ids or e-mail addresses: {', '.join(bad)}", platform=PLATFORM)
        return self.send(channel=self.open_dm(ids), message=plain_message(title=title, text=text), key=key)

    # ----------------------------------------------------------------------------------------
    # people

    def find_user_by_email(self, email: str) -> UserRef:
        """The workspace member with this e-mail (``users.lookupByEmail``); ``FatalError`` naming
        the address when there is none or the account is deactivated."""
        email = (email or "").strip()
        try:
            data = self.client.call("users.lookupByEmail", what=f"user {email}", params={"email": email})
        except SlackFatalError as exc:
            if exc.slack_error == "users_not_found":
                raise SlackFatalError(
                    f"no Slack user with e-mail {email!r} (users_not_found)",
                    slack_error=exc.slack_error,
                    method=exc.method,
                ) from None
            raise
        user = data.get("user") or {}
        if user.get("deleted"):
            raise SlackFatalError(
                f"the Slack user with e-mail {email!r} is deactivated",
                slack_error="user_disabled",
                method="users.lookupByEmail",
            )
        return UserRef(
            platform=PLATFORM,
            id=str(user["id"]),
            username=str(user.get("name") or user["id"]),
            display_name=user.get("real_name") or None,
        )

    def resolve_board(self, board: Iterable[str]) -> dict[str, str]:
        """Map each e-mail entry of a Board list to its Slack user id (for ``check_board_member``).

        Entries that are already user ids are skipped; an address with no (active) Slack user is
        left out and logged, so the check reports it as unresolved instead of failing.
        """
        out: dict[str, str] = {}
        for entry in board:
            entry = (entry or "").strip()
            if "@" not in entry:
                continue
            try:
                out[entry.lower()] = self.find_user_by_email(entry).id
            except SlackFatalError as exc:
                log.warning("slack: Board list entry not resolved: %s", exc)
        return out

    # ----------------------------------------------------------------------------------------
    # the Board

    def escalate(
        self, escalation: BoardEscalation, *, channel: str | None = None, key: str | None = None
    ) -> MessageRef:
        """Post the Board escalation (``board_escalation``) to the Board channel, at most once per
        proposal (the key defaults to ``board-escalation:<proposal_id>``)."""
        return self.send(
            channel=channel or self.settings.board_channel,
            message=board_escalation(escalation),
            key=key or f"board-escalation:{escalation.proposal_id}",
        )

    def record_decision(
        self,
        ref: MessageRef | str,
        escalation: BoardEscalation,
        *,
        decision: BoardDecision,
        decided_by: str,
        decided_at: Any,
        note: str | None = None,
    ) -> MessageRef:
        """Rewrite the escalation message to show who decided what and when (``decision_update``)."""
        return self.update(
            ref, decision_update(escalation, decision=decision, decided_by=decided_by, decided_at=decided_at, note=note)
        )

    def respond(self, response_url: str, payload: Mapping[str, Any]) -> None:
        """POST ``payload`` to an interaction's ``response_url``.

        Only URLs on ``CHARTERFLOW_SLACK_RESPONSE_URL_HOSTS`` (``hooks.slack.com``) over https,
        or a loopback sandbox's host, are accepted: the URL comes from the request body, and
        posting to any URL it names would let a forged request make us call anywhere.
        """
        parts = urlsplit(response_url or "")
        host = parts.netloc.lower()
        loopback = False
        try:
            loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        allowed = {h.lower() for h in self.settings.response_url_hosts}
        if host not in allowed or (parts.scheme != "https" and not (loopback and parts.scheme == "http")):
            raise FatalError(
                f"refusing to POST to response_url on {host or 'no host'!r}: not a Slack host", platform=PLATFORM
            )
        self.client.post_response_url(response_url, payload, what="interaction reply")

    def deny(self, action: BoardAction, check: BoardCheck) -> None:
        """Tell the clicker, privately, that they may not decide (``not_allowed_reply``)."""
        if check.allowed:
            raise ValueError("deny() called for an allowed action")
        if not action.response_url:
            raise FatalError("the Board action carries no response_url to answer", platform=PLATFORM)
        self.respond(action.response_url, not_allowed_reply())

    # ----------------------------------------------------------------------------------------
    # Inbound

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """Verify and parse a request from Slack (see ``SlackRequestVerifier``)."""
        if self._verifier is None:
            raise ConfigError(
                "CHARTERFLOW_SLACK_SIGNING_SECRET is not set: requests from Slack cannot be verified,"
                " so none is accepted; set it to the app's signing secret (Basic Information)"
            )
        return self._verifier.verify(headers=headers, body=body)

    def board_actions(self, *, headers: Mapping[str, str], body: bytes) -> list[BoardAction]:
        """Verify a request and return its Board decision clicks (empty for anything else)."""
        return parse_board_actions(self.verify(headers=headers, body=body))
