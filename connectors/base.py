"""Capability Protocols and the platform-neutral types every connector speaks.

A connector is a class with three class attributes (``name``, ``capabilities``, ``docs_url``)
that implements the Protocol of each capability it declares. Flows type-hint only the capability
they use (``def tally(box: BallotBox) -> ...``), so a connector may implement any subset.

Identifiers are strings everywhere (Discord snowflakes are strings; Discourse ids are turned into
strings) so that a value read from one call can be passed to another without conversion.
Every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, runtime_checkable
from urllib.parse import urlsplit

__all__ = [
    "ASGIApp",
    "AccountNames",
    "Activity",
    "Ballot",
    "BallotBox",
    "BallotOption",
    "BallotRequest",
    "EventRequest",
    "MessageEdit",
    "ButtonMessenger",
    "ChannelText",
    "ClientConnector",
    "Closing",
    "InteractionResponder",
    "Links",
    "MessageEditor",
    "OperatorAccount",
    "PlaceLinks",
    "PROTOCOLS",
    "RoleResolver",
    "TallyDisplay",
    "Uploader",
    "WorkingGroupHome",
    "Calendar",
    "Capability",
    "ChangeStatus",
    "Connector",
    "ConformanceSamples",
    "Directory",
    "Inbound",
    "InboundEvent",
    "Instanced",
    "Messenger",
    "MessageRef",
    "ModerationEntry",
    "ModerationLog",
    "GuideShelf",
    "NewcomerWelcome",
    "OnboardingPrompt",
    "OnboardingPrompts",
    "ModeratorsRoom",
    "ModeratorsRoomHost",
    "PlatformReport",
    "PlatformReports",
    "Redelivery",
    "Role",
    "AuthorNames",
    "RoomMessage",
    "RoomReader",
    "RoomWriter",
    "RoleChange",
    "RoleKind",
    "RoleManager",
    "Sandbox",
    "ScheduledEvent",
    "UserRef",
    "Vote",
    "CAPABILITY_PROTOCOLS",
    "COMMUNITY_CAPABILITIES",
    "audit_reason",
    "instance_key",
    "url_instance",
]

# An ASGI application: ``await app(scope, receive, send)``.
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class Capability(str, enum.Enum):
    """What a connector can do; each value names one Protocol below."""

    DIRECTORY = "directory"
    ROLE_MANAGER = "role_manager"
    MESSENGER = "messenger"
    BALLOT_BOX = "ballot_box"
    INBOUND = "inbound"
    CALENDAR = "calendar"
    CHANNEL_TEXT = "channel_text"
    BUTTONS = "buttons"
    MESSAGE_EDITOR = "message_editor"
    INTERACTIONS = "interactions"
    UPLOADER = "uploader"


# What the WG's processes use on a community platform: eligibility (Directory), roles, its
# threads and prompts (Messenger) and votes; a connector adds what else its platform offers.
COMMUNITY_CAPABILITIES: frozenset[Capability] = frozenset(
    {Capability.DIRECTORY, Capability.ROLE_MANAGER, Capability.MESSENGER, Capability.BALLOT_BOX}
)


class Closing:
    """``with connector: ...`` closes the connector on the way out (every connector has
    ``close()``, which releases its HTTP client)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LoadsSettings(Protocol):
    @classmethod
    def load(cls, **overrides: Any) -> Any: ...


class _ClosesClient(Protocol):
    def close(self) -> None: ...


_Client = TypeVar("_Client", bound=_ClosesClient)


class ClientConnector(Closing, Generic[_Client]):
    """A connector built from one settings class and holding one HTTP client: ``from_env`` and
    ``close`` written once. A subclass names ``settings_class`` (whose ``load(**overrides)`` reads
    ``CHARTERFLOW_<NAME>_*`` and raises ``ConfigError`` naming what is wrong), takes ``settings=``
    in its keyword-only ``__init__`` and sets ``self.client`` (of the type it is parametrized
    with: ``class DiscordConnector(ClientConnector[DiscordClient], ...)``)."""

    settings_class: ClassVar[type[_LoadsSettings]]
    client: _Client

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """Build from the connector's ``CHARTERFLOW_<NAME>_*`` variables (and ``.env``);
        ``ConfigError`` naming what is wrong."""
        build: Callable[..., Self] = cls  # the subclass's own __init__, which takes settings=
        return build(settings=cls.settings_class.load(**overrides))

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def audit_reason(reason: str) -> str:
    """The audit reason of a role change, stripped; an empty one is a ``ValueError`` (every
    ``grant``/``revoke`` carries one)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a role change needs an audit reason")
    return reason


# --------------------------------------------------------------------------------------------
# Platform-neutral types


@dataclass(frozen=True, kw_only=True)
class UserRef:
    """A person's account on one platform. ``id`` is the platform's stable id, as a string.
    ``platform_account``: the platform's own account (Discourse ``system``, a Discord bot or
    integration), which R-ADMIN-2 never counts; not part of equality."""

    platform: str
    id: str
    username: str
    display_name: str | None = None
    platform_account: bool = field(default=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class Activity:
    """What a platform says about a user's activity (the 3-month rule, R-ELIG-1, reads this).

    ``None`` means the platform does not report that figure, never "zero".
    """

    user: UserRef
    created_at: datetime
    last_seen_at: datetime | None = None
    last_posted_at: datetime | None = None
    days_visited: int | None = None
    post_count: int | None = None


class RoleKind(str, enum.Enum):
    """The kinds of rights a connector can grant: site moderator, site admin, or a group/role."""

    MODERATOR = "moderator"
    ADMIN = "admin"
    GROUP = "group"


@dataclass(frozen=True, kw_only=True)
class Role:
    """A right on one platform: ``Role.moderator()``, ``Role.admin()`` or ``Role.group("board")``.

    For ``GROUP`` the ``name`` is the platform's group or role name (Discourse group name,
    Discord role name); the connector resolves it to an id.
    """

    kind: RoleKind
    name: str = ""

    @classmethod
    def moderator(cls) -> Role:
        """The site-wide moderator right."""
        return cls(kind=RoleKind.MODERATOR, name="moderator")

    @classmethod
    def admin(cls) -> Role:
        """The site-wide administrator right."""
        return cls(kind=RoleKind.ADMIN, name="admin")

    @classmethod
    def group(cls, name: str) -> Role:
        """Membership of the group (or role) called ``name``."""
        if not name:
            raise ValueError("a group role needs a name")
        return cls(kind=RoleKind.GROUP, name=name)

    def __str__(self) -> str:
        return self.name if self.kind is not RoleKind.GROUP else f"group:{self.name}"


class ChangeStatus(str, enum.Enum):
    """Outcome of a grant or revoke. Failures are exceptions, never a status."""

    APPLIED = "applied"  # this call changed the platform
    UNCHANGED = "unchanged"  # the platform already was in the wanted state; nothing was sent
    PENDING_CONFIRMATION = "pending_confirmation"  # a human must confirm (e.g. an e-mailed link)


@dataclass(frozen=True, kw_only=True)
class RoleChange:
    """The report of one grant or revoke, with the audit reason it was sent with."""

    user: UserRef
    role: Role
    action: str  # "grant" | "revoke"
    status: ChangeStatus
    reason: str
    detail: str = ""

    @property
    def done(self) -> bool:
        """True when the platform is now in the wanted state (applied or already so)."""
        return self.status in (ChangeStatus.APPLIED, ChangeStatus.UNCHANGED)


@dataclass(frozen=True, kw_only=True)
class MessageRef:
    """Where a message landed. ``thread_id`` is what ``Messenger.reply`` takes."""

    platform: str
    id: str
    thread_id: str
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class BallotOption:
    """One choice on a ballot; ``id`` is the platform's (a Discourse option digest)."""

    id: str
    label: str


@dataclass(frozen=True, kw_only=True)
class Ballot:
    """A vote opened on a platform. ``id`` is enough to read and close it again."""

    platform: str
    id: str
    question: str
    options: tuple[BallotOption, ...]
    is_open: bool = True
    message: MessageRef | None = None
    closes_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Vote:
    """One voter's choice. A voter who chose several options gives several ``Vote``s."""

    voter: UserRef
    option_id: str


@dataclass(frozen=True, kw_only=True)
class InboundEvent:
    """A verified inbound request, parsed.

    ``dedupe_key`` is unique per delivery of one event (redeliveries share it): the gateway's
    inbox stores it under a unique constraint. ``instance`` names the platform instance the
    event came from (the Forum's host, the Discord guild id, the Slack team id): every key built
    from a platform id in it goes through ``instance_key``. ``attributes`` holds the few fields
    flows use, as strings; ``data`` is the whole verified payload, as the safe view of
    ``connectors.jsonbody.read_json`` when the body was unusual, and ``notes`` then says what
    that view changed (the gateway keeps the raw body beside it).
    """

    platform: str
    dedupe_key: str
    kind: str
    instance: str = ""
    actor: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ScheduledEvent:
    """A meeting on a platform's calendar."""

    platform: str
    id: str
    title: str
    starts_at: datetime
    ends_at: datetime | None = None
    location: str | None = None


@dataclass(frozen=True, kw_only=True)
class BallotRequest:
    """``BallotBox.open_ballot``'s keywords as one value: what a connector's ``open_ballot_for``
    receives (the Protocol's ``open_ballot`` builds it, so the signature is written once)."""

    channel: str
    question: str
    options: tuple[str, ...]
    voters_group: str | None = None
    closes_at: datetime | None = None
    key: str | None = None
    text: str = ""
    secret: bool = False


@dataclass(frozen=True, kw_only=True)
class EventRequest:
    """``Calendar.schedule_event``'s keywords as one value, for ``schedule_event_for``."""

    title: str
    starts_at: datetime
    ends_at: datetime
    location: str | None = None
    description: str = ""
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class MessageEdit:
    """``MessageEditor.edit_message``'s keywords as one value, for ``edit_message_for``."""

    channel_id: str
    message_id: str
    text: str
    keep_buttons: bool = False
    components: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True, kw_only=True)
class ModerationEntry:
    """One entry of a platform's moderation log (Discord guild audit log, Discourse staff action
    log), as the platform reported it. ``kind`` is the platform's own name for the action
    (``MEMBER_BAN_ADD``, ``suspend_user``; a number as text when the connector does not know
    it); ``changes`` holds the entry's change or detail fields; ``raw`` the whole entry."""

    platform: str
    id: str
    kind: str
    occurred_at: datetime
    target: UserRef | None = None
    moderator: UserRef | None = None
    reason: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    link: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Platform instances: ids are unique only within one Forum, guild or team


def url_instance(url: str | None) -> str:
    """The instance a site's base URL names: its host (and port, when given and not the
    scheme's default), lower case; ``""`` for no URL. ``https://Forum.example.org:443/`` gives
    ``forum.example.org``, as Discourse names itself (``Discourse.base_url`` omits a default
    port, so its webhooks' ``X-Discourse-Instance`` does)."""
    text = (url or "").strip()
    if not text:
        return ""
    parts = urlsplit(text if "//" in text else f"//{text}")
    netloc = parts.netloc.rpartition("@")[2].lower()
    default = {"https": ":443", "http": ":80"}.get(parts.scheme.lower())
    return netloc.removesuffix(default) if default else netloc


def instance_key(platform: str, instance: str, *parts: object) -> str:
    """A key built from platform ids, naming the instance they belong to, so that two Forums
    (or guilds, teams) with the same ids never meet: ``discourse:forum.example.org:topic:123``.
    ``ValueError`` when the instance is unknown (an empty one would merge instances again)."""
    if not instance:
        raise ValueError(f"a {platform} key needs the platform instance")
    return ":".join([platform, instance, *(str(p) for p in parts)])


@runtime_checkable
class Instanced(Protocol):
    """A connector (or verifier) that knows which platform instance it talks to: Discourse the
    site's host from its base URL, Discord the guild id, Slack the team id."""

    @property
    def instance(self) -> str:
        """The instance, as ``instance_key`` takes it."""
        ...


# --------------------------------------------------------------------------------------------
# Capabilities


@runtime_checkable
class Directory(Protocol):
    """Find people and read their activity."""

    def find_user(self, username: str) -> UserRef:
        """The account called ``username``; ``FatalError`` naming it if there is none."""
        ...

    def activity(self, user: UserRef) -> Activity:
        """What the platform reports about ``user``'s activity."""
        ...

    def list_staff(self) -> list[UserRef]:
        """Everyone holding a site-wide privileged right (moderators and admins)."""
        ...


@runtime_checkable
class RoleManager(Protocol):
    """Read, grant and revoke rights. Every change carries an audit ``reason``.

    Implementations re-read the platform before writing, so a repeated call (or a retry after a
    dropped connection) reports ``UNCHANGED`` instead of sending the write again.
    """

    def list_holders(self, role: Role) -> list[UserRef]:
        """Everyone who holds ``role`` now."""
        ...

    def grant(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Give ``role`` to ``user``; may report ``PENDING_CONFIRMATION``."""
        ...

    def revoke(self, user: UserRef, role: Role, *, reason: str) -> RoleChange:
        """Take ``role`` from ``user``."""
        ...


@runtime_checkable
class Messenger(Protocol):
    """Post in a channel/category, reply in a thread, message people privately.

    ``key``, when given, makes the call idempotent: a second call with the same key returns the
    message the first one created instead of posting again.
    """

    def post(self, *, channel: str, title: str, text: str, key: str | None = None) -> MessageRef:
        """Start a new thread (a Discourse topic) in ``channel`` (a category name, a channel id)."""
        ...

    def reply(self, *, thread_id: str, text: str, key: str | None = None) -> MessageRef:
        """Add ``text`` to the thread ``thread_id`` (``MessageRef.thread_id``)."""
        ...

    def direct_message(self, *, recipients: Sequence[str], title: str, text: str, key: str | None = None) -> MessageRef:
        """Send a private message to ``recipients`` (usernames or group names)."""
        ...


@runtime_checkable
class BallotBox(Protocol):
    """Run a vote where the members are."""

    def open_ballot(
        self,
        *,
        channel: str,
        question: str,
        options: Sequence[str],
        voters_group: str | None = None,
        closes_at: datetime | None = None,
        key: str | None = None,
        text: str = "",
        secret: bool = False,
    ) -> Ballot:
        """Open a ballot in ``channel``, optionally restricted to a group. ``text`` is what
        voters read with the question (the case); a connector shortens it to the platform's
        limit with a visible note, never silently. ``secret`` (R-VOTE-SECRET): no member sees
        who voted how, and counts only once it is closed; otherwise voters are public.

        A connector subclasses ``BallotBox``, inherits this and implements ``open_ballot_for``."""
        return self.open_ballot_for(
            BallotRequest(
                channel=channel,
                question=question,
                options=tuple(options),
                voters_group=voters_group,
                closes_at=closes_at,
                key=key,
                text=text,
                secret=secret,
            )
        )

    def open_ballot_for(self, request: BallotRequest) -> Ballot:
        """``open_ballot`` with its arguments as one value (what a connector implements)."""
        ...

    def read_votes(self, ballot: Ballot) -> list[Vote]:
        """Every vote cast so far, with the voter's identity (for a secret ballot too: the
        connector reads them with its operator credentials, never where members look)."""
        ...

    def close_ballot(self, ballot: Ballot, *, result: str | None = None) -> Ballot:
        """Stop accepting votes; closing a closed ballot is not an error. ``result`` (one line,
        the tally merged across platforms) is shown on the closed ballot where the platform
        lets a bot change what the ballot shows; a connector that cannot ignores it."""
        ...


@runtime_checkable
class Inbound(Protocol):
    """Verify and parse a signed request that the platform sent us."""

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """The parsed event; ``InvalidSignature`` when the signature is missing or wrong."""
        ...


@runtime_checkable
class Calendar(Protocol):
    """Scheduled events (the quarterly meetings)."""

    def schedule_event(
        self,
        *,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        location: str | None = None,
        description: str = "",
        reason: str | None = None,
    ) -> ScheduledEvent:
        """Create an event on the platform's calendar; ``reason`` goes to the platform's audit
        log where it keeps one. A connector subclasses ``Calendar`` and implements
        ``schedule_event_for``."""
        return self.schedule_event_for(
            EventRequest(
                title=title,
                starts_at=starts_at,
                ends_at=ends_at,
                location=location,
                description=description,
                reason=reason,
            )
        )

    def schedule_event_for(self, request: EventRequest) -> ScheduledEvent:
        """``schedule_event`` with its arguments as one value (what a connector implements)."""
        ...

    def list_events(self) -> list[ScheduledEvent]:
        """Upcoming events."""
        ...


@runtime_checkable
class ModerationLog(Protocol):
    """Read a platform's moderation log (not a ``Capability`` member: a flow checks for it with
    ``isinstance``)."""

    def moderation_entries(self, *, after: str | None, limit: int = 100) -> list[ModerationEntry]:
        """At most ``limit`` entries newer than the entry id ``after`` (``None``: from the
        oldest kept), oldest first; call again with the last id for the next page."""
        ...


@runtime_checkable
class ChannelText(Protocol):
    """Post text in a channel without opening a thread (a Discord channel message)."""

    def send_text(
        self, *, channel: str | None, text: str, title: str | None = None, key: str | None = None
    ) -> list[MessageRef]:
        """``text`` (``title`` first, in bold) as one or more messages within the platform's
        limit; ``channel`` ``None`` is the connector's WG channel."""
        ...


@runtime_checkable
class ButtonMessenger(Protocol):
    """Messages carrying buttons; a press comes back through ``Inbound`` with the button's
    ``custom_id`` (Discord message components)."""

    def post_with_buttons(
        self, *, channel: str, text: str, buttons: Sequence[tuple[str, str]], key: str | None = None
    ) -> MessageRef:
        """One message in ``channel`` with 1 to 5 buttons, each ``(label, custom_id)``."""
        ...

    def direct_message_with_button(
        self, *, user: UserRef, title: str, text: str, button_label: str, custom_id: str, key: str | None = None
    ) -> MessageRef:
        """A private message to ``user`` with one button."""
        ...

    def post_components(
        self, *, channel: str, content: str, components: Sequence[Mapping[str, Any]], key: str | None = None
    ) -> MessageRef:
        """One message with the platform's own component rows (a flow's presentation table
        builds them); the connector enforces the platform's limits."""
        ...


@runtime_checkable
class MessageEditor(Protocol):
    """Change a message the bot posted (a ballot's or an alert's outcome shown in place)."""

    def edit_message(
        self,
        *,
        channel_id: str,
        message_id: str,
        text: str,
        keep_buttons: bool = False,
        components: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Replace the text; the buttons go unless ``keep_buttons`` or new ``components``. A
        connector subclasses ``MessageEditor`` and implements ``edit_message_for``."""
        self.edit_message_for(
            MessageEdit(
                channel_id=channel_id,
                message_id=message_id,
                text=text,
                keep_buttons=keep_buttons,
                components=None if components is None else tuple(components),
            )
        )

    def edit_message_for(self, edit: MessageEdit) -> None:
        """``edit_message`` with its arguments as one value (what a connector implements)."""
        ...


@runtime_checkable
class InteractionResponder(Protocol):
    """Answer an interaction the gateway deferred (by its token, valid for minutes)."""

    def followup(self, event: InboundEvent | str, text: str, *, ephemeral: bool = True) -> list[MessageRef]:
        """A further answer (not idempotent: a flow sends it once per key)."""
        ...

    def edit_original(self, event: InboundEvent | str, text: str) -> None:
        """Replace the deferred first answer (idempotent)."""
        ...


@runtime_checkable
class Uploader(Protocol):
    """Upload a file (a report's charts) and get where it can be linked from."""

    def upload(self, *, filename: str, content: bytes, content_type: str = "image/png") -> dict[str, Any]:
        """The platform's answer, with at least ``url`` (and ``short_url`` when it has one)."""
        ...


# Small descriptive Protocols (not ``Capability`` members: a flow asks with ``isinstance``).


@runtime_checkable
class WorkingGroupHome(Protocol):
    """Where the WG lives on the platform unless the settings say otherwise."""

    def working_group_space(self) -> tuple[str, str]:
        """``(channel, group)``: the WG's private channel or category, and its group or role."""
        ...


@runtime_checkable
class RoleResolver(Protocol):
    """The platform's id of a role (an interaction lists the presser's role ids)."""

    def role_id(self, role: Role) -> str:
        """The id of ``role``; ``FatalError`` when the platform has no such role."""
        ...


@runtime_checkable
class Links(Protocol):
    """Where people open a thread or an event in their browser."""

    def thread_url(self, thread_id: str, *, slug: str = "") -> str | None:
        """The thread's (topic's) URL; ``None`` when the connector cannot say."""
        ...

    def event_url(self, event_id: str) -> str | None:
        """A scheduled event's URL; ``None`` when the connector cannot say."""
        ...


@runtime_checkable
class PlaceLinks(Protocol):
    """Where people open the community's places (the space, the WG's and the moderators' rooms)
    in a browser or an app: what the inspector and the banner link to."""

    def place_links(self) -> list[tuple[str, str]]:
        """``(label, URL)`` pairs, the community's entry first; made from settings (no call)."""
        ...


@runtime_checkable
class OperatorAccount(Protocol):
    """The account the connector acts as (where a platform e-mails a confirmation)."""

    def operator_name(self) -> str:
        """Its username."""
        ...


@runtime_checkable
class TallyDisplay(Protocol):
    """A ballot whose platform shows counts the connector keeps itself (Discord buttons): the
    flows publish the ledger's final tally before closing it."""

    def publish_tally(self, ballot_id: str, counts: Sequence[int]) -> None:
        """One count per option, in option order; the closed ballot shows them."""
        ...


@runtime_checkable
class GuideShelf(Protocol):
    """Where the community guides live on a platform (R-GUIDE): one post per guide, edited in
    place when its text changes (a Forum topic in the guides category; messages in Discord's
    resources channel). Not a ``Capability`` member: a flow asks with ``isinstance``."""

    def guide_format(self) -> tuple[int, int, bool]:
        """``(limit, max_pieces, title_in_text)``: characters one message holds, how many
        messages one guide may take before it is linked instead, and whether the platform
        shows no title of its own (the title then opens the first message)."""
        ...

    def shelve_guide(
        self, *, channel: str | None, title: str, pieces: Sequence[str], placed: Sequence[MessageRef] = (), key: str
    ) -> list[MessageRef]:
        """Show ``pieces`` (each within ``guide_format``'s limit) as one guide in ``channel``
        (``None``: the connector's guides channel): the messages in ``placed`` (what an earlier
        call returned) are edited in place, missing ones posted once (keyed from ``key``), and
        placed ones no longer needed say so. Returns every message the guide now holds, in
        order (the first is where people open it)."""
        ...


@runtime_checkable
class NewcomerWelcome(Protocol):
    """What a newcomer sees first (Discord's welcome screen, the Forum's welcome message),
    pointing at the guides (R-GUIDE). Not a ``Capability`` member."""

    def set_welcome(self, *, summary: str, guides: Sequence[tuple[str, str]], channel: str | None = None) -> str:
        """Point newcomers at the guides: ``summary`` (at most 140 characters), ``guides`` as
        ``(title, url)``, ``channel`` the guides channel (``None``: the connector's).
        Idempotent (the same call twice leaves the same welcome). Returns where it is shown."""
        ...


@dataclass(frozen=True, kw_only=True)
class OnboardingPrompt:
    """The prompt ``OnboardingPrompts.keep_onboarding_prompt`` keeps: its platform id, how many
    options it shows, whether this call changed it, and where it is shown."""

    id: str
    options: int
    changed: bool
    where: str


@runtime_checkable
class OnboardingPrompts(Protocol):
    """The questions a platform asks new members when they join (Discord's server onboarding),
    where one prompt points them at the guides (R-GUIDE). Not a ``Capability`` member."""

    def keep_onboarding_prompt(
        self, *, title: str, options: Sequence[tuple[str, str]], channel: str | None = None, prompt_id: str = ""
    ) -> OnboardingPrompt:
        """Show one prompt ``title`` (or the prompt ``prompt_id``, when still there) whose
        options are ``options`` as ``(label, description)``, each opening ``channel`` (``None``:
        the connector's guides channel); every other prompt and setting is kept as it is. Reads
        first and writes only what differs, so the same call twice writes once."""
        ...


CAPABILITY_PROTOCOLS: dict[Capability, type] = {
    Capability.DIRECTORY: Directory,
    Capability.ROLE_MANAGER: RoleManager,
    Capability.MESSENGER: Messenger,
    Capability.BALLOT_BOX: BallotBox,
    Capability.INBOUND: Inbound,
    Capability.CALENDAR: Calendar,
    Capability.CHANNEL_TEXT: ChannelText,
    Capability.BUTTONS: ButtonMessenger,
    Capability.MESSAGE_EDITOR: MessageEditor,
    Capability.INTERACTIONS: InteractionResponder,
    Capability.UPLOADER: Uploader,
}

# Every Protocol a flow may ask a connector for, with the descriptive ones (the conformance
# suite covers each for every connector implementing it).
PROTOCOLS: tuple[type, ...] = (
    *CAPABILITY_PROTOCOLS.values(),
    ModerationLog,
    Instanced,
    WorkingGroupHome,
    RoleResolver,
    Links,
    OperatorAccount,
    TallyDisplay,
    GuideShelf,
    NewcomerWelcome,
    OnboardingPrompts,
    PlaceLinks,
)


# --------------------------------------------------------------------------------------------
# What a connector class and its sandbox look like to the framework


@dataclass(frozen=True, kw_only=True)
class ConformanceSamples:
    """Sandbox data the conformance suite needs to exercise each capability generically.

    Every name here exists in the sandbox's default seed, except ``missing_username``.
    """

    username: str
    missing_username: str
    grantable_role: Role
    channel: str
    recipients: tuple[str, ...]
    voters: tuple[str, ...] = ()
    voters_group: str | None = None
    # A request the sandbox's ``signed_request`` can sign and ``Inbound.verify`` parses to an
    # event of this same kind (each platform has its own: a webhook event, a slash command...).
    inbound_kind: str = "ping"
    inbound_payload: Mapping[str, Any] = field(default_factory=dict)


class Sandbox(Protocol):
    """A connector's loopback emulator of its platform, as the framework drives it."""

    app: ASGIApp
    samples: ConformanceSamples

    def client_info(self, base_url: str) -> dict[str, Any]:
        """What any HTTP client needs to talk to the sandbox at ``base_url``: URLs, credentials."""
        ...

    def connect(self, base_url: str, **options: Any) -> Any:
        """A connector instance pointed at the sandbox at ``base_url``."""
        ...

    def cast_vote(self, base_url: str, ballot: Ballot, *, voter: str, option_index: int) -> None:
        """Vote on ``ballot`` as ``voter``, through the platform's own API."""
        ...

    def signed_request(self, *, kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """Headers and body of an inbound request the platform would send (for ``Inbound``)."""
        ...

    # A sandbox of a connector declaring ``interactions`` also offers
    # ``deferred_interaction(base_url) -> str``: the token of an interaction the platform
    # delivered and our side deferred (the conformance suite answers it).


@runtime_checkable
class Connector(Protocol):
    """The class-level contract checked by discovery (``connectors.registry``)."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    docs_url: ClassVar[str]
    # Optional: ``False`` for a connector that is not a community platform of the WG (Slack,
    # the Board's channel); such a one is never served as a ``flows.platforms`` space.
    # community: ClassVar[bool] = True

    @classmethod
    def from_env(cls) -> Connector:
        """Build one from ``CHARTERFLOW_<NAME>_*`` settings; ``ConfigError`` naming what is missing."""
        ...

    @classmethod
    def sandbox(cls, *, seed: Mapping[str, Any] | None = None, **options: Any) -> Sandbox:
        """This connector's sandbox, seeded with ``seed`` (the default seed when ``None``)."""
        ...

    def close(self) -> None:
        """Release the HTTP client."""
        ...


# --------------------------------------------------------------------------------------------
# The common room (R-COMMS): private rooms a bridge reads and writes


@dataclass(frozen=True, kw_only=True)
class RoomMessage:
    """One message of a private room as the platform holds it. ``thread_id`` is the
    conversation it belongs to (a Discord thread, a Forum topic; ``None``: the room itself);
    ``title`` is set on a message that opens a conversation with a name (a topic's first
    post); ``own`` says the connector's own account wrote it (a bridge never relays those);
    ``attachments`` are the files' URLs."""

    platform: str
    id: str
    room: str
    author: UserRef
    text: str
    created_at: datetime
    thread_id: str | None = None
    title: str | None = None
    edited_at: datetime | None = None
    attachments: tuple[str, ...] = ()
    own: bool = False
    url: str | None = None


@runtime_checkable
class RoomReader(Protocol):
    """Read a private room by polling (a platform that does not push its messages to us)."""

    def room_messages(self, *, room: str, after: str | None, limit: int = 100) -> list[RoomMessage]:
        """Oldest first: at most ``limit`` messages of ``room`` (a channel or a thread, by id or
        name) newer than the message id ``after``; ``after`` ``None``: the newest ``limit``
        (what a reader compares to find edits and deletions)."""
        ...


@runtime_checkable
class RoomWriter(Protocol):
    """Write into a private room as the bridge: open a conversation, reply in one, edit, delete.
    Text longer than ``room_text_limit()`` is the caller's to split or shorten (rules.commons)."""

    def room_text_limit(self) -> int:
        """The longest text one message may hold here."""
        ...

    def room_key(self, room: str) -> str:
        """The platform's id of ``room`` (a channel's, a category's), as pushed events name it."""
        ...

    def room_thread(self, *, room: str, message_id: str, name: str) -> str:
        """The conversation a person's message in ``room`` opens: its thread (opened now on a
        platform whose threads hang on a message, found again when it exists), or its topic."""
        ...

    def room_post(
        self, *, room: str, text: str, thread_id: str | None = None, title: str | None = None, key: str | None = None
    ) -> MessageRef:
        """Post ``text``: a reply in conversation ``thread_id``, else a new conversation in
        ``room`` named ``title`` (its ``MessageRef.thread_id`` is where replies go). ``key`` makes
        a retry find the first post instead of posting again."""
        ...

    def room_edit(self, *, room: str, thread_id: str | None, message_id: str, text: str) -> None:
        """Replace the text of a message the bridge posted."""
        ...

    def room_delete(self, *, room: str, thread_id: str | None, message_id: str) -> None:
        """Delete a message the bridge posted; one already gone is not an error."""
        ...


@runtime_checkable
class AuthorNames(Protocol):
    """A platform whose pushed events name people by id only (Slack's Events API): the name a
    relayed message shows for its author (R-COMMS)."""

    def author_name(self, user_id: str) -> str | None:
        """The person's display name; ``None`` when the platform does not know them."""
        ...


PROTOCOLS = (*PROTOCOLS, RoomReader, RoomWriter, AuthorNames)
# The moderators' private space (R-COMMS, R-SAFE-1): kept small so that the common-room bridge
# and the report queue share it. Not a ``Capability`` member: a room is an object a flow gets
# for a platform (``flows.safety.room``), not the connector itself, because ``post`` here is
# not ``Messenger.post``.


@runtime_checkable
class ModeratorsRoom(Protocol):
    """Where one platform's moderators read: a Discord channel, a Forum category or group
    message, a Matrix room. ``buttons`` are ``(label, custom_id)`` pairs shown where the
    platform has buttons (elsewhere the text says how to act); ``key`` makes ``post``
    idempotent as ``Messenger``'s does."""

    platform: str

    def post(self, text: str, *, buttons: Sequence[tuple[str, str]] = (), key: str | None = None) -> MessageRef:
        """Post ``text`` (its first line is the title) in the room."""
        ...

    def edit(self, ref: MessageRef, text: str) -> None:
        """Show ``text`` in place of the message ``ref`` (its buttons go); a platform that
        cannot edit adds it as a reply in the message's thread."""
        ...


@runtime_checkable
class ModeratorsRoomHost(Protocol):
    """A connector that keeps its moderators' room itself (Matrix: a room by alias, with no
    buttons and replies in threads), in place of the moderation flows' space."""

    def moderators_room(self) -> ModeratorsRoom:
        """The moderators' room of this platform."""
        ...


@dataclass(frozen=True, kw_only=True)
class PlatformReport:
    """A report a person made with the platform's own report button (Synapse's event reports),
    read back by a poll (R-SAFE-1). ``id`` is the platform's, stable; ``reporter`` who reported,
    ``target`` the author of the reported message; ``message_id``/``channel_id``/``link`` where."""

    platform: str
    id: str
    reported_at: datetime
    reporter: UserRef | None = None
    target: UserRef | None = None
    message_id: str | None = None
    channel_id: str | None = None
    link: str | None = None
    reason: str | None = None


@runtime_checkable
class PlatformReports(Protocol):
    """A platform that keeps its members' reports itself (Matrix: the homeserver's report button)."""

    def platform_reports(self) -> list[PlatformReport]:
        """Every report the platform holds, oldest first (the flow takes each once by its id)."""
        ...


@runtime_checkable
class Redelivery(Protocol):
    """A platform that keeps what it failed to push to charterflow's gateway and pushes it again
    on request (the Forum: Discourse sends a webhook once, and never again when the gateway did
    not answer). The gateway takes a push it has seen once, by its event id."""

    def redeliver_failed(self, *, since: datetime) -> list[str]:
        """Ask the platform to push again each push to the gateway that failed since ``since``
        and was not delivered since; the event ids asked for."""
        ...


@runtime_checkable
class AccountNames(Protocol):
    """A platform whose people may change their username, and whose old name another may then
    take (Discord, the Forum): a private message goes to the name the account has now, read by
    its id, never to the name stored when it was linked."""

    def current_username(self, user: UserRef) -> str:
        """The username of the account ``user.id`` now; ``FatalError`` (status 404) when the
        platform no longer has it."""
        ...


PROTOCOLS = (*PROTOCOLS, ModeratorsRoomHost, PlatformReports, Redelivery, AccountNames)
