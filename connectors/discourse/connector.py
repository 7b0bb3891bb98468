"""The Discourse connector: Directory, RoleManager, Messenger, BallotBox and Inbound on a forum.

Every write re-reads the forum first (``HttpPolicy.ensure``), so a call repeated after a crash or
a dropped connection reports ``UNCHANGED`` (or finds the post it already made) instead of acting
twice. Endpoints and their quirks: ``specs/API-NOTES.md`` section 2 and https://docs.discourse.org/.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from connectors.base import (
    COMMUNITY_CAPABILITIES,
    Activity,
    Ballot,
    BallotBox,
    BallotOption,
    BallotRequest,
    Capability,
    ChangeStatus,
    ClientConnector,
    InboundEvent,
    MessageRef,
    ModerationEntry,
    Redelivery,
    Role,
    RoleChange,
    RoleKind,
    UserRef,
    Vote,
    audit_reason,
    url_instance,
)
from connectors.discourse.client import PLATFORM, DiscourseClient, log
from connectors.discourse.doctor import HOOK_PATH
from connectors.discourse.inbound import DiscourseWebhookVerifier
from connectors.discourse.settings import DiscourseSettings
from connectors.errors import ConfigError, FatalError, RetriableError
from connectors.http import Clock, RetryPolicy, WriteOutcome

__all__ = ["DiscourseConnector", "POLL_NAME"]

POLL_NAME = "vote"
_STAFF_PAGE = 100  # /admin/users/list/{flag}.json pages hold 100 users
_MEMBERS_PAGE = 1000  # /groups/{name}/members.json allows limit up to 1000
_VOTERS_PAGE = 50  # /polls/voters.json allows limit 1..50
# The site setting max_post_length (default 32000 characters): longer raw is refused with 422.
MAX_POST_LENGTH = 32000
_STAFF_LOG_PAGE = 200  # /admin/logs/staff_action_logs.json pages hold up to 200 rows, newest first
_HOOK_EVENT_PAGE = 50  # /admin/api/web_hook_events/{id}.json pages hold 50, newest first
_HOOK_EVENT_MAX_PAGES = 20  # a redelivery pass reads at most 1,000 deliveries back
_STAFF_LOG_MAX_PAGES = 50  # a first read (no cursor) imports at most this many pages of history


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _external_id(key: str | None) -> str:
    """A Discourse ``external_id`` for an idempotency key (random when there is none)."""
    if key is None:
        return "cf-" + uuid.uuid4().hex
    return "cf-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


# Discourse's defaults for a body's least length: min_post_length and min_first_post_length 20,
# min_personal_message_post_length 10 (config/site_settings.yml).
MIN_POST_LENGTH = 20
# TopicTitleLengthValidator's highest max_topic_title_length, and TextSentinel's longest word in a
# title (title_max_word_length, 30 letters or digits in a row).
MAX_TITLE_LENGTH = 255
_TITLE_WORD = 30


def _visible_length(raw: str) -> int:
    """How long Discourse finds ``raw`` against its minimum: StrippedLengthValidator's
    get_sanitized_value drops HTML comments (one line each), counts an emoji code and a run of
    dots or commas as one character, and strips the ends
    (https://github.com/discourse/discourse/blob/main/lib/validators/stripped_length_validator.rb)."""
    return len(re.sub(r"\.{2,}|,{2,}|:\w+(:\w+)?:", "X", re.sub(r"<!--.*?-->", "", raw)).strip())


def _filled(text: str, minimum: int = MIN_POST_LENGTH) -> str:
    """``text`` made as long as Discourse's minimum with zero-width spaces when its visible part is
    shorter (a relayed "ok" from chat, our reply marker not counting). Discourse keeps them
    (TextCleaner.normalize_whitespaces leaves U+200B, Ruby's strip does not remove it) and a
    reader sees nothing."""
    return text + "\u200b" * max(0, minimum - _visible_length(text))


# "@name" where Discourse's markdown reads a mention (a user, a group, or "@here", which pings
# the topic's posters): at a word boundary, so not in an e-mail address. Relayed from another
# platform, the name is not the Forum's person's: nobody here is pinged.
_MENTION = re.compile(r"(?<![\w`])@(?=[\w.-])")


def _unmentioned(text: str) -> str:
    """``text`` with every mention broken by a zero-width space after the ``@``: read the same,
    pings nobody (as relayed text on Discord, ``allowed_mentions``, and on Slack, escaped); and
    its ``[poll]`` markup broken too, or the copy would be a poll anyone in the room could vote in.
    Still within ``max_post_length`` with the characters added."""
    return _shorten(_inert_polls(_MENTION.sub("@\u200b", text)), MAX_POST_LENGTH)


def _inert_polls(text: str) -> str:
    """``[poll]``…``[/poll]`` shown as written: Discourse makes a poll of it."""
    return text.replace("[poll", "[\u200bpoll").replace("[/poll", "[/\u200bpoll")


def _fit_title(title: str) -> str:
    """``title`` as a topic title Discourse takes: at most 255 characters, no run of more than 30
    letters or digits ("Title seems unclear", TextSentinel#seems_unpretentious?,
    https://github.com/discourse/discourse/blob/main/lib/text_sentinel.rb): a long run is broken
    by a hyphen."""
    long_word, piece = rf"[^\W_]{{{_TITLE_WORD + 1},}}", rf".{{1,{_TITLE_WORD}}}"
    title = re.sub(long_word, lambda m: "-".join(re.findall(piece, m[0])), title)
    return title if len(title) <= MAX_TITLE_LENGTH else title[: MAX_TITLE_LENGTH - 1].rstrip() + "…"


def _shorten(text: str, room: int) -> str:
    """``text`` cut to ``room`` characters with a visible note saying how much was left out."""
    if len(text) <= room:
        return text
    note = " … [shortened to fit the Forum's post length: {n} characters left out]"
    keep = max(0, room - len(note.format(n=len(text))))
    return text[:keep].rstrip() + note.format(n=len(text) - len(text[:keep].rstrip()))


class DiscourseConnector(ClientConnector[DiscourseClient], BallotBox, Redelivery):
    """Talks to one Discourse site through its REST API with an admin API key.

    Build it with ``DiscourseConnector.from_env()`` or ``DiscourseConnector(settings=...)``;
    ``transport``, ``clock``, ``rng`` and ``retry`` (a ``RetryPolicy``) are injectable. Close it
    (or use ``with``) when done.
    """

    name: ClassVar[str] = "discourse"
    capabilities: ClassVar[frozenset[Capability]] = COMMUNITY_CAPABILITIES | {Capability.INBOUND, Capability.UPLOADER}
    docs_url: ClassVar[str] = "https://docs.discourse.org/"
    settings_class: ClassVar[type[DiscourseSettings]] = DiscourseSettings

    def __init__(
        self,
        *,
        settings: DiscourseSettings,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        rng: Any = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.client = DiscourseClient.from_settings(
            settings, max_retries=settings.max_retries, retry=retry, transport=transport, clock=clock, rng=rng
        )
        self._verifier = (
            DiscourseWebhookVerifier(secret=settings.webhook_secret, instance=self.instance)
            if settings.webhook_secret is not None and settings.webhook_secret.get_secret_value()
            else None
        )
        self._lock = threading.Lock()
        self._group_ids: dict[str, int] = {}
        self._category_ids: dict[str, int] = {}

    @property
    def instance(self) -> str:
        """The site's host from its base URL (``Instanced``): Discourse has no stable site id
        readable through the API, and the host is what its webhooks name."""
        return url_instance(self.settings.url)

    def working_group_space(self) -> tuple[str, str]:
        """The WG's private category and group, from the connector's settings."""
        return self.settings.category, self.settings.group

    def thread_url(self, thread_id: str, *, slug: str = "") -> str | None:
        """The topic's URL (``/t/{slug}/{id}``, or ``/t/{id}`` without a slug)."""
        if not thread_id:
            return None
        base, slug = self.settings.url.rstrip("/"), slug.strip("/")
        return f"{base}/t/{slug}/{thread_id}" if slug else f"{base}/t/{thread_id}"

    def event_url(self, event_id: str) -> str | None:
        """None: the Forum keeps no calendar here."""
        return None

    def operator_name(self) -> str:
        """The API user the connector acts as (Discourse e-mails it admin confirmations)."""
        return self.settings.api_username

    def __repr__(self) -> str:
        return f"DiscourseConnector(url={self.settings.url!r}, api_username={self.settings.api_username!r})"

    @classmethod
    def sandbox(cls, *, seed: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """A ``DiscourseSandbox`` (a loopback emulator of the endpoints used here)."""
        # lazy: start-up: the sandbox (Starlette, its seed data) loads only when one is asked for
        from connectors.discourse.sandbox import DiscourseSandbox

        return DiscourseSandbox(seed=seed, **options)

    # ----------------------------------------------------------------------------------------
    # helpers

    def _user_ref(self, data: Mapping[str, Any]) -> UserRef:
        return UserRef(
            platform=PLATFORM,
            id=str(data["id"]),
            username=str(data["username"]),
            display_name=data.get("name") or None,
            # Discourse's own users (``system``, ``discobot``) have ids below 1.
            platform_account=int(data["id"]) < 1,
        )

    def _admin_user(self, user: UserRef) -> dict[str, Any]:
        return self.client.get(
            f"/admin/users/{int(user.id)}.json",
            what=f"Discourse user {user.username!r} (id {user.id})",
            admin_route=True,
        )

    def current_username(self, user: UserRef) -> str:
        """The account's username now (``GET /admin/users/{id}.json``): a member may rename, and
        the old name is free for someone else to take. ``FatalError`` 404 when it is gone."""
        if not str(user.id).isdigit():
            raise FatalError(f"not a Forum user id: {user.id!r}", platform=PLATFORM, status=404)
        return str(self._admin_user(user)["username"])

    def _group_id(self, name: str) -> int:
        with self._lock:
            if name in self._group_ids:
                return self._group_ids[name]
        data = self.client.get(f"/groups/{quote(name, safe='')}.json", what=f"Discourse group {name!r}")
        if data["group"].get("automatic"):
            # Guardian#can_edit_group? is false for an automatic group (moderators, staff,
            # trust_level_N): Discourse sets its members itself and refuses any change with 403.
            raise ConfigError(
                f"Discourse group {name!r} is automatic: its members cannot be added or removed; "
                "name a group of your own for this role (Admin → Groups → New group)"
            )
        group_id = int(data["group"]["id"])
        with self._lock:
            self._group_ids[name] = group_id
        return group_id

    def _category_id(self, name: str) -> int:
        with self._lock:
            if name in self._category_ids:
                return self._category_ids[name]
        data = self.client.get(
            "/categories.json", what="Discourse categories", params={"include_subcategories": "true"}
        )
        found: dict[str, int] = {}
        for cat in data.get("category_list", {}).get("categories", []):
            found[str(cat["name"])] = int(cat["id"])
            found.setdefault(str(cat.get("slug", "")), int(cat["id"]))
        with self._lock:
            self._category_ids.update(found)
        if name not in found:
            known = ", ".join(sorted(k for k in found if k)) or "none visible"
            raise FatalError(
                f"Discourse category {name!r} not found (categories: {known}); check "
                "CHARTERFLOW_DISCOURSE_CATEGORY and that the API user can see it",
                platform=PLATFORM,
                status=404,
            )
        return found[name]

    # ----------------------------------------------------------------------------------------
    # Directory

    def find_user(self, username: str) -> UserRef:
        """The account called ``username`` (``GET /u/{username}.json``)."""
        if not username or "/" in username:
            raise FatalError(f"Discourse user {username!r} not found (not a username)", platform=PLATFORM, status=404)
        data = self.client.get(f"/u/{quote(username, safe='')}.json", what=f"Discourse user {username!r}")
        return self._user_ref(data["user"])

    def activity(self, user: UserRef) -> Activity:
        """Activity from ``GET /admin/users/{id}.json``: the one call with ``days_visited``."""
        data = self._admin_user(user)
        created = _ts(data.get("created_at"))
        if created is None:
            raise FatalError(f"Discourse user {user.username!r} has no created_at", platform=PLATFORM)
        return Activity(
            user=self._user_ref(data),
            created_at=created,
            last_seen_at=_ts(data.get("last_seen_at")),
            last_posted_at=_ts(data.get("last_posted_at")),
            days_visited=data.get("days_visited"),
            post_count=data.get("post_count"),
        )

    def _staff_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1  # pages start at 1; each holds up to 100 users
        while True:
            batch = self.client.get(
                "/admin/users/list/staff.json",
                what="Discourse staff list",
                params={"page": page},
                admin_route=True,
            )
            rows.extend(batch)
            if len(batch) < _STAFF_PAGE:
                return rows
            page += 1

    def list_staff(self) -> list[UserRef]:
        """Moderators and admins (``GET /admin/users/list/staff.json``, every page)."""
        return [self._user_ref(row) for row in self._staff_rows()]

    # ----------------------------------------------------------------------------------------
    # RoleManager

    def list_holders(self, role: Role) -> list[UserRef]:
        """Who holds ``role`` now: moderators/admins from the staff list, or a group's members."""
        if role.kind is RoleKind.MODERATOR:
            return [self._user_ref(r) for r in self._staff_rows() if r.get("moderator")]
        if role.kind is RoleKind.ADMIN:
            return [self._user_ref(r) for r in self._staff_rows() if r.get("admin")]
        members: list[UserRef] = []
        offset = 0
        while True:
            data = self.client.get(
                f"/groups/{quote(role.name, safe='')}/members.json",
                what=f"Discourse group {role.name!r}",
                params={"limit": _MEMBERS_PAGE, "offset": offset},
            )
            batch = data.get("members", [])
            members.extend(self._user_ref(m) for m in batch)
            offset += len(batch)
            if not batch or offset >= int(data.get("meta", {}).get("total", 0)):
                return members

    def _holds(self, user: UserRef, role: Role, members_body: dict[str, Any] | None = None) -> bool:
        data = self._admin_user(user)
        if members_body is not None:
            # A group change names the account as it is called now (read by its id): a member who
            # renamed is still found, and never whoever took their old name since.
            members_body["usernames"] = str(data.get("username") or user.username)
        if role.kind is RoleKind.MODERATOR:
            return bool(data.get("moderator"))
        if role.kind is RoleKind.ADMIN:
            return bool(data.get("admin"))
        return any(g.get("name") == role.name for g in data.get("groups", []))

    def grant(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Give ``role`` to ``user``, re-reading the user first.

        Discourse has no field for the audit reason on these endpoints: it is carried in the
        returned ``RoleChange`` (for the ledger) and logged. ``grant_admin`` is completed by an
        e-mailed confirmation link, so it reports ``PENDING_CONFIRMATION``.
        """
        reason = audit_reason(reason)
        if role.kind is RoleKind.ADMIN:
            return self._grant_admin(user, role, reason)
        if role.kind is RoleKind.MODERATOR:
            path, body = f"/admin/users/{int(user.id)}/grant_moderation.json", None
            method, admin_route = "PUT", True
        else:
            path, body = f"/groups/{self._group_id(role.name)}/members.json", {"usernames": user.username}
            method, admin_route = "PUT", False
        what = f"grant {role} to {user.username!r}"
        outcome = self._ensure(
            is_done=lambda: self._holds(user, role, body),
            write=lambda: self.client.request(method, path, what=what, json_body=body, admin_route=admin_route),
            what=what,
        )
        return self._report(user, role, "grant", outcome, reason)

    def _ensure(self, *, is_done: Any, write: Any, what: str) -> WriteOutcome:
        try:
            outcome, _ = self.client.policy.ensure(is_done=is_done, write=write, what=what)
        except FatalError as exc:
            # Someone else made the same change between our read and our write: Discourse then
            # refuses ours (403 from the Guardian, 422 "already a member"); the state is as wanted.
            if exc.status in (403, 422) and is_done():
                return WriteOutcome.UNCHANGED
            raise
        return outcome

    def _grant_admin(self, user: UserRef, role: Role, reason: str) -> RoleChange:
        what = f"grant admin to {user.username!r}"
        if self._holds(user, role):
            return self._report(user, role, "grant", WriteOutcome.UNCHANGED, reason)
        try:
            response = self.client.request(
                "PUT", f"/admin/users/{int(user.id)}/grant_admin.json", what=what, admin_route=True
            )
        except RetriableError as exc:
            if not exc.ambiguous:
                raise
            # The grant may have sent a confirmation e-mail; sending it again would send another.
            if self._holds(user, role):
                return self._report(user, role, "grant", WriteOutcome.APPLIED, reason)
            raise FatalError(
                f"{what}: outcome unknown ({exc}); a confirmation e-mail may have gone to "
                f"{self.settings.api_username!r}: check that inbox before trying again",
                platform=PLATFORM,
                status=exc.status,
            ) from None
        body = self.client.json(response, what=what)
        if isinstance(body, dict) and body.get("email_confirmation_required"):
            # Discourse's SecondFactor::Actions::GrantAdmin: without 2FA on the acting admin the
            # grant waits for the e-mailed link (API-NOTES.md, "Roles").
            return RoleChange(
                user=user,
                role=role,
                action="grant",
                status=ChangeStatus.PENDING_CONFIRMATION,
                reason=reason,
                detail=f"Discourse e-mailed a confirmation link to the acting admin "
                f"{self.settings.api_username!r}; the grant takes effect when a person opens it",
            )
        if self._holds(user, role):
            return self._report(user, role, "grant", WriteOutcome.APPLIED, reason)
        raise FatalError(f"{what}: Discourse answered but the user is not an admin", platform=PLATFORM)

    def revoke(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Take ``role`` from ``user``, re-reading the user first (see ``grant``)."""
        reason = audit_reason(reason)
        if role.kind is RoleKind.MODERATOR:
            method, path, body, admin_route = "PUT", f"/admin/users/{int(user.id)}/revoke_moderation.json", None, True
        elif role.kind is RoleKind.ADMIN:
            method, path, body, admin_route = "PUT", f"/admin/users/{int(user.id)}/revoke_admin.json", None, True
        else:
            method, path = "DELETE", f"/groups/{self._group_id(role.name)}/members.json"
            body, admin_route = {"usernames": user.username}, False
        what = f"revoke {role} from {user.username!r}"
        outcome = self._ensure(
            is_done=lambda: not self._holds(user, role, body),
            write=lambda: self.client.request(method, path, what=what, json_body=body, admin_route=admin_route),
            what=what,
        )
        return self._report(user, role, "revoke", outcome, reason)

    def _report(self, user: UserRef, role: Role, action: str, outcome: WriteOutcome, reason: str) -> RoleChange:
        status = ChangeStatus.APPLIED if outcome is WriteOutcome.APPLIED else ChangeStatus.UNCHANGED
        log.info("discourse: %s %s %s: %s (reason: %s)", action, role, user.username, status.value, reason)
        return RoleChange(user=user, role=role, action=action, status=status, reason=reason)

    # ----------------------------------------------------------------------------------------
    # Messenger

    def _message_ref(self, post: Mapping[str, Any]) -> MessageRef:
        # A topic's posts carry no post_url: built from the slug and number as Discourse does.
        url = post.get("post_url") or (
            f"/t/{post['topic_slug']}/{post['topic_id']}/{post['post_number']}" if post.get("topic_slug") else None
        )
        return MessageRef(
            platform=PLATFORM,
            id=str(post["id"]),
            thread_id=str(post["topic_id"]),
            url=f"{self.settings.url}{url}" if url else None,
        )

    def _topic_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        response = self.client.request(
            "GET",
            f"/t/external_id/{quote(external_id, safe='')}.json",
            what=f"Discourse topic with external_id {external_id!r}",
            ok_statuses=(301, 302, 404),
        )
        if response.status_code == 404:
            return None
        # The redirect goes to the topic's URL (/t/{slug}/{id}.json or /t/{id}.json).
        match = re.search(r"/(\d+)(?:\.json)?/?(?:\?.*)?$", response.headers.get("location", ""))
        if not match:
            raise FatalError("Discourse redirected an external_id lookup to an unexpected URL", platform=PLATFORM)
        return self.client.get(
            f"/posts/by_number/{match.group(1)}/1.json", what=f"first post of topic {match.group(1)}"
        )

    def _create_topic(self, body: dict[str, Any], *, key: str | None, what: str) -> dict[str, Any]:
        """POST a new topic or PM at most once, using ``external_id`` to find it again.

        A topic title is used once on a site (any case; private messages aside): Topic's
        ``unique_among`` validation refuses a second "Welcome … to the working group" with 422
        "Title has already been used" unless ``allow_duplicate_topic_titles`` is on
        (https://github.com/discourse/discourse/blob/main/app/models/topic.rb). Such a topic is
        sent once more with the day added to its title."""
        minimum = MIN_POST_LENGTH // 2 if "archetype" in body else MIN_POST_LENGTH
        body = {**body, "title": _fit_title(str(body["title"])), "raw": _filled(str(body["raw"]), minimum)}
        try:
            return self._create_topic_once(body, key=key, what=what)
        except FatalError as exc:
            if exc.status != 422 or "already been used" not in str(exc) or "archetype" in body:
                raise
        title = f"{str(body['title'])[:240].rstrip()} ({datetime.now(UTC):%Y-%m-%d})"
        return self._create_topic_once({**body, "title": title}, key=key, what=what)

    def _create_topic_once(self, body: dict[str, Any], *, key: str | None, what: str) -> dict[str, Any]:
        external_id = _external_id(key)
        body = {**body, "external_id": external_id}
        found: dict[str, Any] = {}

        def is_done() -> bool:
            post = self._topic_by_external_id(external_id)
            if post is not None:
                found["post"] = post
            return post is not None

        def write() -> dict[str, Any]:
            return self.client.json(self.client.request("POST", "/posts.json", what=what, json_body=body), what=what)

        _, created = self.client.policy.ensure(is_done=is_done, write=write, what=what)
        return created if created is not None else found["post"]

    def post(self, *, channel: str, title: str, text: str, key: str | None = None) -> MessageRef:
        """Open a topic in the category called ``channel`` (``POST /posts.json``)."""
        category = self._category_id(channel)
        post = self._create_topic(
            {"title": title, "raw": text, "category": category},
            key=key,
            what=f"new topic {title!r} in category {channel!r}",
        )
        return self._message_ref(post)

    REPLY_LOOKBACK = 20  # a retry comes seconds after its first try: the reply is among these

    def _own_post_with(self, thread_id: str, marker: str) -> dict[str, Any] | None:
        """Our post carrying ``marker`` among the latest posts of topic ``thread_id``, a public
        topic or a private message we take part in: the topic's post ids (``GET /t/{id}.json``),
        then the latest ones with their ``raw`` (``GET /t/{id}/posts.json?include_raw=true``;
        ``/posts.json`` lists public topics only).
        https://github.com/discourse/discourse/blob/main/app/controllers/topics_controller.rb"""
        tid = quote(str(thread_id), safe="")
        topic = self.client.get(f"/t/{tid}.json", what=f"topic {thread_id}")
        stream = [int(i) for i in (topic.get("post_stream") or {}).get("stream", [])][-self.REPLY_LOOKBACK :]
        if not stream:
            return None
        page = self.client.get(
            f"/t/{tid}/posts.json",
            what=f"latest posts of topic {thread_id}",
            params=[("include_raw", "true"), *(("post_ids[]", str(i)) for i in stream)],
        )
        for post in (page.get("post_stream") or {}).get("posts", []):
            if post.get("username") == self.settings.api_username and marker in str(post.get("raw", "")):
                return dict(post)
        return None

    def reply(self, *, thread_id: str, text: str, key: str | None = None) -> MessageRef:
        """Reply in topic ``thread_id`` (a public topic or a private message).

        Replies have no ``external_id``; a marker comment (``<!-- cf:… -->``, invisible once
        cooked) lets a retry find our reply among the topic's latest posts instead of posting
        it twice (``_own_post_with``).
        """
        marker = f"<!-- cf:{_external_id(key)} -->"
        raw = f"{_filled(text)}\n\n{marker}"  # the marker does not count towards the minimum
        what = f"reply in topic {thread_id}"
        found: dict[str, Any] = {}

        def is_done() -> bool:
            post = self._own_post_with(thread_id, marker)
            if post is not None:
                found["post"] = post
            return post is not None

        def write() -> dict[str, Any]:
            body = {"topic_id": int(thread_id), "raw": raw}
            return self.client.json(self.client.request("POST", "/posts.json", what=what, json_body=body), what=what)

        _, created = self.client.policy.ensure(is_done=is_done, write=write, what=what)
        return self._message_ref(created if created is not None else found["post"])

    def direct_message(self, *, recipients: Sequence[str], title: str, text: str, key: str | None = None) -> MessageRef:
        """Send a private message to usernames and/or group names (``archetype: private_message``)."""
        names = [r.strip() for r in recipients if r and r.strip()]
        if not names:
            raise ValueError("a private message needs at least one recipient")
        post = self._create_topic(
            {
                "title": title,
                "raw": text,
                "archetype": "private_message",
                "target_recipients": ",".join(names),
            },
            key=key,
            what=f"private message {title!r} to {', '.join(names)}",
        )
        return self._message_ref(post)

    # ----------------------------------------------------------------------------------------
    # Guides (R-GUIDE): a topic in the Guides category, the welcome message

    GUIDES_CATEGORY = "Guides"
    GUIDE_LIMIT = 32000  # Discourse's default max_post_length
    GUIDE_MAX_PIECES = 10

    def guide_format(self) -> tuple[int, int, bool]:
        """A post holds 32000 characters (the site default); a topic has its own title."""
        return self.GUIDE_LIMIT, self.GUIDE_MAX_PIECES, False

    def _edit_post(self, post_id: str, raw: str, *, reason: str) -> None:
        self.client.request(
            "PUT",
            f"/posts/{quote(str(post_id), safe='')}.json",
            what=f"post {post_id}",
            json_body={"post": {"raw": _filled(raw), "edit_reason": reason}},
        )

    def shelve_guide(
        self, *, channel: str | None, title: str, pieces: Sequence[str], placed: Sequence[MessageRef] = (), key: str
    ) -> list[MessageRef]:
        """The first piece opens a topic in ``channel`` (default ``Guides``), later pieces are
        replies in it; placed posts are edited in place (``PUT /posts/{id}.json``, which keeps
        the post's revision history), extra ones told they are no longer used."""
        refs: list[MessageRef] = []
        for i in range(max(len(pieces), len(placed))):
            text = pieces[i] if i < len(pieces) else "(This part of the guide is no longer used.)"
            if i < len(placed):
                self._edit_post(placed[i].id, text, reason="guide updated")
                refs.append(placed[i])
            elif i == 0:
                refs.append(self.post(channel=channel or self.GUIDES_CATEGORY, title=title, text=text, key=key))
            else:
                refs.append(self.reply(thread_id=refs[0].thread_id, text=text, key=f"{key}:{i}"))
        return refs

    # The welcome message a new user gets as a private message from the system user is the
    # site text ``system_messages.welcome_user.text_body_template`` (Admin › Customize › Text).
    # https://meta.discourse.org/t/customizing-trust-level-promotion-messages-for-new-users/193270
    WELCOME_TEXT = "system_messages.welcome_user.text_body_template"

    def set_welcome(self, *, summary: str, guides: Sequence[tuple[str, str]], channel: str | None = None) -> str:
        """Write the welcome message new users receive (``PUT /admin/customize/site_texts/{id}``):
        ``summary`` and a link to each guide. Writing the same text again changes nothing."""
        lines = [summary.strip(), ""] + [f"- [{t}]({u})" for t, u in guides]
        value = "\n".join(lines).strip()
        self.client.request(
            "PUT",
            f"/admin/customize/site_texts/{self.WELCOME_TEXT}.json",
            what="the welcome message",
            json_body={"site_text": {"value": value}},
            admin_route=True,
        )
        return f"{self.settings.url}/admin/customize/site_texts/{self.WELCOME_TEXT}"

    # RoomWriter: the common room (R-COMMS); the Forum pushes its posts by webhook, so no reader

    def room_text_limit(self) -> int:
        """The site's ``max_post_length`` (default 32000 characters)."""
        return MAX_POST_LENGTH

    def room_key(self, room: str) -> str:
        """The category's id (webhooks name it)."""
        return str(self._category_id(room))

    def room_thread(self, *, room: str, message_id: str, name: str) -> str:
        """The post's topic (``GET /posts/{id}.json``)."""
        post = self.client.get(f"/posts/{int(message_id)}.json", what=f"post {message_id}")
        return str(post["topic_id"])

    def room_post(
        self, *, room: str, text: str, thread_id: str | None = None, title: str | None = None, key: str | None = None
    ) -> MessageRef:
        """A reply in topic ``thread_id``, else a new topic titled ``title`` in category ``room``;
        a mention in ``text`` (another platform's) pings nobody here."""
        text = _unmentioned(text)
        if thread_id:
            return self.reply(thread_id=thread_id, text=text, key=key)
        return self.post(channel=room, title=title or text.splitlines()[0][:200], text=text, key=key)

    def room_edit(self, *, room: str, thread_id: str | None, message_id: str, text: str) -> None:
        """``PUT /posts/{id}.json`` (Discourse sends ``post_edited``, which comes back as our own)."""
        self._edit_post(str(int(message_id)), _unmentioned(text), reason="edited where it was written")

    def room_delete(self, *, room: str, thread_id: str | None, message_id: str) -> None:
        """``DELETE /posts/{id}.json`` (a first post takes its topic along); gone already is fine."""
        self.client.request(
            "DELETE", f"/posts/{int(message_id)}.json", what=f"post {message_id}", ok_statuses=(200, 204, 404)
        )

    def upload(self, *, filename: str, content: bytes, content_type: str = "image/png") -> dict[str, Any]:
        """Upload a file for posts (``POST /uploads.json``, multipart, ``upload_type=composer``,
        ``synchronous=true``). Returns the upload's JSON; embed it in Markdown as
        ``![alt](short_url)``.

        Discourse keeps one upload per content (``UploadCreator`` finds an existing upload by
        SHA1: https://github.com/discourse/discourse/blob/main/lib/upload_creator.rb), so sending
        the same file again after a dropped connection returns the same upload: safe to retry."""
        if not content:
            raise ValueError("an upload needs content")
        name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", filename).strip("-") or "upload"
        what = f"upload of {name!r}"
        http = self.client._http  # the client's request() sends JSON bodies only
        request = http.build_request(
            "POST",
            "/uploads.json",
            data={"upload_type": "composer", "synchronous": "true"},
            files={"file": (name, content, content_type)},
        )
        response = self.client.policy.send(http, request, idempotent=True)
        if response.status_code != 200:
            raise self.client._error(response, what=what, admin_route=False)
        return self.client.json(response, what=what)

    # ----------------------------------------------------------------------------------------
    # BallotBox

    def open_ballot_for(self, request: BallotRequest) -> Ballot:
        """Open a topic holding the poll: ``text`` above it, voters named (``public=true``,
        results always shown) or, when ``secret``, a poll whose voters no one can list
        (``public`` left out) and whose counts show once it is closed (``results=on_close``)."""
        labels = [o.strip() for o in request.options]
        if len(labels) < 2 or len(set(labels)) != len(labels) or any(not o or "\n" in o or "[" in o for o in labels):
            raise ValueError("a ballot needs at least two distinct one-line options without '['")
        if "\n" in request.question.strip():
            raise ValueError("the ballot question must be one line (it is the topic title)")
        attrs = [f"name={POLL_NAME}", "type=regular"]
        attrs += ["results=on_close"] if request.secret else ["results=always", "public=true"]
        if request.voters_group:
            attrs.append(f"groups={request.voters_group}")
        if request.closes_at is not None:
            attrs.append("close=" + request.closes_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        poll = "\n".join([f"[poll {' '.join(attrs)}]", *(f"* {o}" for o in labels), "[/poll]"])
        head = request.question.strip()
        room = MAX_POST_LENGTH - len(head) - len(poll) - 4
        # A person's text (an applicant's answer) must not open or end a poll of its own: a
        # zero-width space after "[" keeps it readable but no longer BBCode.
        text = _inert_polls(request.text)
        body = _shorten(text.strip(), room) if text.strip() else ""
        raw = "\n\n".join(part for part in (head, body, poll) if part)
        post = self._create_topic(
            {"title": request.question.strip(), "raw": raw, "category": self._category_id(request.channel)},
            key=request.key,
            what=f"ballot {request.question.strip()!r} in category {request.channel!r}",
        )
        return self._read_ballot(str(post["id"]), message=self._message_ref(post))

    def _poll(self, post_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        post = self.client.get(f"/posts/{int(post_id)}.json", what=f"Discourse post {post_id}")
        for poll in post.get("polls") or []:
            if poll.get("name") == POLL_NAME:
                return post, poll
        raise FatalError(f"Discourse post {post_id} holds no poll named {POLL_NAME!r}", platform=PLATFORM, status=404)

    def _read_ballot(self, post_id: str, *, message: MessageRef | None = None) -> Ballot:
        post, poll = self._poll(post_id)
        lines = [line for line in str(post.get("raw", "")).splitlines() if line.strip()]
        return Ballot(
            platform=PLATFORM,
            id=str(post["id"]),
            question=lines[0] if lines else "",
            options=tuple(
                BallotOption(id=str(o["id"]), label=re.sub(r"<[^>]+>", "", str(o.get("html", ""))))
                for o in poll.get("options", [])
            ),
            is_open=poll.get("status") == "open",
            message=message or self._message_ref(post),
            closes_at=_ts(poll.get("close")),
        )

    def read_votes(self, ballot: Ballot) -> list[Vote]:
        """Every vote. A public poll's are read option by option and page by page from
        ``/polls/voters.json``. A secret poll's voters cannot be listed by anyone (Discourse's
        ``Poll#can_see_voters?`` needs ``public``), so each member of the poll's groups is asked
        for their own choice: the post read as that user carries ``polls_votes`` (their vote
        only). That needs an "All users" API key; no member ever sees another's vote."""
        _, poll = self._poll(ballot.id)
        if not poll.get("public"):
            return self._secret_votes(ballot, poll)
        votes: dict[tuple[str, str], Vote] = {}
        for option in ballot.options:
            page = 1
            while True:
                data = self.client.get(
                    "/polls/voters.json",
                    what=f"voters of ballot {ballot.id}",
                    params={
                        "post_id": int(ballot.id),
                        "poll_name": POLL_NAME,
                        "option_id": option.id,
                        "page": page,
                        "limit": _VOTERS_PAGE,
                    },
                )
                batch = (data.get("voters") or {}).get(option.id) or []
                # One vote per voter and option, however often listed: one option's pages do not
                # overlap, but all options' do (rows `BETWEEN offset AND offset + limit`,
                # serialized_voters in plugins/poll/lib/poll.rb), and a page read while votes
                # change can repeat a voter.
                for v in batch:
                    votes.setdefault((str(v["id"]), option.id), Vote(voter=self._user_ref(v), option_id=option.id))
                if len(batch) < _VOTERS_PAGE:
                    break
                page += 1
        return list(votes.values())

    def _secret_votes(self, ballot: Ballot, poll: Mapping[str, Any]) -> list[Vote]:
        if not int(poll.get("voters") or 0):
            return []  # nobody voted yet: no need to ask each member
        groups = [g.strip() for g in str(poll.get("groups") or "").split(",") if g.strip()]
        if not groups:
            raise FatalError(
                f"Discourse ballot {ballot.id} is secret but names no voters group: its votes cannot be read",
                platform=PLATFORM,
            )
        members: dict[str, UserRef] = {}
        for group in groups:
            for user in self.list_holders(Role.group(group)):
                members.setdefault(user.id, user)
        votes: list[Vote] = []
        for user in members.values():
            try:
                post = self.client.get(
                    f"/posts/{int(ballot.id)}.json",
                    as_user=user.username,
                    what=f"the vote of {user.username!r} on ballot {ballot.id}",
                )
            except ConfigError as exc:
                raise ConfigError(
                    "reading a secret Forum ballot asks each voter's own choice as that voter, which "
                    "needs an 'All users' API key (CHARTERFLOW_DISCOURSE_API_KEY is a single-user "
                    f"key): {exc}"
                ) from None
            except FatalError as exc:
                if exc.status == 404:
                    continue  # this member cannot see the ballot's topic, so did not vote
                if exc.status == 403:
                    # Discourse lets no key act as a suspended or deactivated user (403,
                    # lib/auth/default_current_user_provider.rb): their choice cannot be read, and
                    # one such member must not stop the count of everyone else's.
                    log.warning(
                        "discourse: the vote of %s on ballot %s cannot be read: %s", user.username, ballot.id, exc
                    )
                    continue
                raise
            for option_id in (post.get("polls_votes") or {}).get(POLL_NAME, []):
                votes.append(Vote(voter=user, option_id=str(option_id)))
        return votes

    def close_ballot(self, ballot: Ballot, *, result: str | None = None) -> Ballot:
        """Close the poll (``PUT /polls/toggle_status``); a closed poll is left as it is.

        A poll shows only its own Forum counts and a bot cannot change them, so ``result`` is not
        shown here: the flow states the merged tally in a reply in the ballot's topic."""
        what = f"close ballot {ballot.id}"
        self.client.policy.ensure(
            is_done=lambda: self._poll(ballot.id)[1].get("status") == "closed",
            write=lambda: self.client.request(
                "PUT",
                "/polls/toggle_status",
                what=what,
                json_body={"post_id": int(ballot.id), "poll_name": POLL_NAME, "status": "closed"},
            ),
            what=what,
        )
        return self._read_ballot(ballot.id, message=ballot.message)

    # ----------------------------------------------------------------------------------------
    # Inbound

    # ----------------------------------------------------------------------------------------
    # Redelivery (the webhooks that failed; Admin::WebHooksController)

    def redeliver_failed(self, *, since: datetime) -> list[str]:
        """Ask the Forum to send again each delivery of charterflow's webhook (its Payload URL
        ends with the gateway's ``/hooks/discourse``) that failed since ``since``.

        Discourse sends a webhook once: again only with the site setting
        ``retry_web_hook_events`` (off by default), under a new event id, and never when the
        gateway did not answer at all (app/jobs/regular/emit_web_hook_event.rb). A redelivery
        sends the stored body and headers, its event id too, so the gateway takes it once. A
        failed delivery whose body was delivered later (a retry) is not asked for; of a body
        that failed more than once, only the newest."""
        asked: list[str] = []
        hooks = self.client.get("/admin/api/web_hooks.json", what="Discourse webhooks", admin_route=True)
        for hook in hooks.get("web_hooks") or []:
            if urlsplit(str(hook.get("payload_url") or "")).path.rstrip("/").endswith(HOOK_PATH):
                for event_id in self._failed_deliveries(int(hook["id"]), since):
                    self.client.request(
                        "POST",
                        f"/admin/api/web_hooks/{int(hook['id'])}/events/{event_id}/redeliver",
                        what=f"Discourse webhook event {event_id}",
                        admin_route=True,
                    )
                    asked.append(event_id)
        if asked:
            log.warning("discourse: asked the Forum to send %d failed webhook deliveries again", len(asked))
        return asked

    def _failed_deliveries(self, hook_id: int, since: datetime) -> list[str]:
        """The ids of the deliveries to send again, newest first (pages of 50, newest first)."""
        events: list[dict[str, Any]] = []
        for page in range(_HOOK_EVENT_MAX_PAGES):
            batch = (
                self.client.get(
                    f"/admin/api/web_hook_events/{hook_id}.json",
                    what="Discourse webhook events",
                    params={"offset": page * _HOOK_EVENT_PAGE},
                    admin_route=True,
                ).get("web_hook_events")
                or []
            )
            recent = [e for e in batch if (_ts(e.get("created_at")) or since) >= since]
            events.extend(recent)
            if len(batch) < _HOOK_EVENT_PAGE or len(recent) < len(batch):
                break
        delivered = {e.get("payload") for e in events if 200 <= int(e.get("status") or 0) < 300}
        wanted: dict[Any, str] = {}
        for e in sorted(events, key=lambda e: int(e["id"]), reverse=True):
            # No answer (-1), a timeout, a burst or the gateway's 5xx may pass another time; its
            # 4xx (a bad signature, a malformed body) would only fail again.
            transient = int(e.get("status") or -1) in (-1, 408, 429) or int(e.get("status") or 0) >= 500
            if transient and e.get("payload") not in delivered and not e.get("redelivering"):
                wanted.setdefault(e.get("payload"), str(e["id"]))
        return list(wanted.values())

    # ----------------------------------------------------------------------------------------
    # ModerationLog (the staff action log; needs a staff API user)

    def moderation_entries(self, *, after: str | None, limit: int = 100) -> list[ModerationEntry]:
        """Staff action log rows newer than the row id ``after``, oldest first, at most ``limit``.

        The log pages newest first by offset (``page`` from 0), so rows are read page by page
        until one at or below ``after``; a row written meanwhile shifts the pages down, which can
        show a row twice (dropped here by id) but never hides one. Without ``after`` only the
        newest ``50 × 200`` rows of history are read."""
        if limit < 1:
            raise ValueError("limit must be positive")
        floor = int(after) if after else 0
        found: dict[int, Mapping[str, Any]] = {}
        page = -1
        while True:
            page += 1
            if floor == 0 and page >= _STAFF_LOG_MAX_PAGES:
                break  # a first read takes the newest rows only; after a cursor, never stop short (no gap)
            data = self.client.get(
                "/admin/logs/staff_action_logs.json",
                what="Discourse staff action log",
                params={"page": page, "limit": _STAFF_LOG_PAGE},
                admin_route=True,
            )
            rows = data.get("staff_action_logs") or []
            for row in rows:
                if int(row["id"]) > floor:
                    found[int(row["id"])] = row
            if len(rows) < _STAFF_LOG_PAGE or any(int(r["id"]) <= floor for r in rows):
                break
        return [self._staff_entry(found[i]) for i in sorted(found)[:limit]]

    def _staff_entry(self, row: Mapping[str, Any]) -> ModerationEntry:
        def ref(user: Mapping[str, Any] | None) -> UserRef | None:
            return self._user_ref(user) if user else None

        changes: dict[str, Any] = {
            k: row.get(k)
            for k in (
                "details",
                "context",
                "previous_value",
                "new_value",
                "post_id",
                "topic_id",
                "category_id",
                "subject",
            )
            if row.get(k) not in (None, "")
        }
        if row.get("flagged_at"):
            changes["flagged_at"] = row["flagged_at"]
        base = self.settings.url.rstrip("/")
        if row.get("topic_id") and row.get("post_id"):
            link = f"{base}/p/{row['post_id']}"
        elif row.get("topic_id"):
            link = f"{base}/t/{row['topic_id']}"
        elif row.get("post_id"):
            link = f"{base}/p/{row['post_id']}"
        elif row.get("target_user"):
            link = f"{base}/admin/users/{row['target_user']['id']}/{quote(str(row['target_user']['username']))}"
        else:
            link = f"{base}/admin/logs/staff_action_logs"
        return ModerationEntry(
            platform=PLATFORM,
            id=str(row["id"]),
            kind=str(row.get("action_name") or row.get("action") or "unknown"),
            occurred_at=_ts(row.get("created_at")) or datetime.now(UTC),
            target=ref(row.get("target_user")),
            moderator=ref(row.get("acting_user")),
            reason=(row.get("details") or None),
            changes=changes,
            link=link,
            raw=dict(row),
        )

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """Verify and parse a webhook delivery (see ``DiscourseWebhookVerifier``)."""
        if self._verifier is None:
            raise ConfigError(
                "CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET is not set: Discourse webhooks cannot be "
                "verified, so none is accepted; set it to the secret configured on the webhook"
            )
        return self._verifier.verify(headers=headers, body=body)
