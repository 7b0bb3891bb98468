"""Which connector serves each capability on each platform, and the working group's spaces there.

A :class:`Platforms` holds one :class:`PlatformSpace` per approved community platform the WG
runs on (``discourse`` = the Forum, ``discord``): the connector, the WG's private channel or
category, the WG role or group, and optionally a public announcements channel. Connector-specific
settings (URLs, tokens, role ids) stay in each connector's own ``CHARTERFLOW_<PLATFORM>_*``
settings; this file only names the WG's spaces and the few membership settings below.

Flows get the ledger and the platforms through :func:`current_ledger` / :func:`current_platforms`
(built from settings on first use); tests and ``charterflow up`` install their own with
:func:`use`.

Membership settings (environment, prefix ``CHARTERFLOW_MEMBERSHIP_``):

========================== =====================================================================
``GATEWAY_URL``            public base URL of the gateway (confirmation and opt-in links);
                           default ``CHARTERFLOW_GATEWAY_PUBLIC_URL``, else
                           ``http://127.0.0.1:<CHARTERFLOW_GATEWAY_PORT, 8080>``
``CONFIRM_SECRET``         secret signing confirmation / opt-in tokens (shared with the gateway);
                           unset: a random one kept in ``$CHARTERFLOW_HOME/confirm-secret``
``DSF_MEMBERS_FILE``       the DSF Individual Members list (R-ELIG-2), TOML ``members = [...]`` or
                           CSV with a ``handle`` column; default ``$CHARTERFLOW_HOME/<charter's
                           dsf_members_file>``; missing = empty list (every nomination invalid)
``DISCOURSE_CATEGORY``     the Forum's private WG category (default: the connector's setting)
``DISCOURSE_GROUP``        the Forum's WG group (default: the connector's setting)
``DISCORD_CHANNEL``        the Discord WG channel (default: the connector's WG channel id)
``DISCORD_ROLE``           the Discord WG role name (default ``wg-member``)
========================== =====================================================================
"""

from __future__ import annotations

import csv
import secrets
import threading
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import (BallotBox, Directory, Instanced, MessageRef, Messenger, Role,
                             RoleKind, RoleManager, UserRef)
from ledger.db import Ledger
from rules import Charter

__all__ = ["MembershipSettings", "PlatformSpace", "Platforms", "TallyVoteStore", "current_ledger",
           "current_platforms", "load_dsf_members", "parse_role", "resolve_confirm_secret", "use"]


class MembershipSettings(BaseSettings):
    """``CHARTERFLOW_MEMBERSHIP_*`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_MEMBERSHIP_", env_file=".env",
                                      extra="ignore")
    gateway_url: str | None = Field(default=None, description=(
        "Public base URL of the gateway, for confirmation and opt-in links (default: the gateway's)."))
    confirm_secret: SecretStr | None = Field(default=None, description=(
        "Signs confirmation and opt-in tokens; shared with the gateway (default: random, kept in "
        "CHARTERFLOW_HOME)."))
    dsf_members_file: Path | None = Field(default=None, description=(
        "The DSF Individual Members list (R-ELIG-2), TOML members = [...] (default: "
        "CHARTERFLOW_HOME/dsf-members.toml)."))
    discourse_category: str | None = Field(default=None, description=(
        "The Forum's private WG category (default: the connector's setting)."))
    discourse_group: str | None = Field(default=None, description=(
        "The Forum's WG group (default: the connector's setting)."))
    discord_channel: str | None = Field(default=None, description=(
        "The Discord WG channel (default: the connector's WG channel)."))
    discord_role: str = Field(default="wg-member", description="The Discord WG role's name.")


def parse_role(text: str) -> Role:
    """The ``Role`` a ledger platform-role string names: ``group:<name>``, ``moderator``, ``admin``."""
    if text == "moderator":
        return Role.moderator()
    if text == "admin":
        return Role.admin()
    if text.startswith("group:"):
        return Role.group(text.removeprefix("group:"))
    return Role.group(text)


@dataclass(kw_only=True)
class PlatformSpace:
    """The WG on one platform: its connector, private channel, WG role, announcements channel."""

    platform: str
    connector: Any
    wg_channel: str
    wg_role: Role
    announce_channel: str | None = None

    @property
    def instance(self) -> str:
        """The platform instance the connector talks to (``Instanced``; ``""`` if it cannot say)."""
        return self.connector.instance if isinstance(self.connector, Instanced) else ""

    @property
    def directory(self) -> Directory | None:
        """The connector as a ``Directory`` when it is one."""
        return self.connector if isinstance(self.connector, Directory) else None

    @property
    def roles(self) -> RoleManager | None:
        """The connector as a ``RoleManager`` when it is one."""
        return self.connector if isinstance(self.connector, RoleManager) else None

    @property
    def messenger(self) -> Messenger | None:
        """The connector as a ``Messenger`` when it is one."""
        return self.connector if isinstance(self.connector, Messenger) else None

    @property
    def ballots(self) -> BallotBox | None:
        """The connector as a ``BallotBox`` when it is one."""
        return self.connector if isinstance(self.connector, BallotBox) else None

    def prompt(self, *, user: UserRef, title: str, text: str, button_label: str,
               custom_id: str, key: str) -> MessageRef:
        """A private message asking ``user`` to act. On Discord it carries a button (the press
        comes back as an interaction with ``custom_id``); elsewhere ``text`` holds the link.

        A connector offering ``direct_message_with_button`` (the Discord connector) is used for
        it; any other ``Messenger`` gets a plain direct message."""
        own = getattr(self.connector, "direct_message_with_button", None)
        if callable(own):
            return own(user=user, title=title, text=text, button_label=button_label,
                       custom_id=custom_id, key=key)
        messenger = self.messenger
        if messenger is None:
            raise LookupError(f"{self.platform}: no Messenger to reach {user.username!r}")
        return messenger.direct_message(recipients=[user.username], title=title, text=text, key=key)

    def close_ballot(self, ballot: Any, *, counts: Sequence[int] | None = None,
                     result: str | None = None) -> Any:
        """Close ``ballot`` on this platform; ``result`` (one line, the ledger's tally merged
        across platforms) is shown on the closed ballot where the connector can; ``counts`` (one
        per option) is published for a connector that counts from its own vote store (Discord:
        votes are cast in the ledger, not in that store)."""
        box = self.ballots
        if box is None:
            raise LookupError(f"{self.platform}: no BallotBox")
        store = getattr(self.connector, "votes", None)
        if counts is not None and isinstance(store, TallyVoteStore):
            store.publish(str(ballot.id), counts)
        if result is not None:
            return box.close_ballot(ballot, result=result)
        return box.close_ballot(ballot)


class TallyVoteStore:
    """The Discord connector's ``VoteStore`` as the membership flows use it.

    Ballot votes are cast in the ledger (the ``vote`` handler; a person's latest vote on either
    platform counts), never in the connector's store, so ``DiscordConnector.close_ballot`` would
    count none. Before closing, :meth:`PlatformSpace.close_ballot` publishes the ledger's final
    tally here; from then on :meth:`votes` answers one anonymous record per counted vote (who
    voted stays in the ledger, R-PRIVACY), and the closed message shows the real counts. Until a
    tally is published everything is the wrapped store's.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._final: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TallyVoteStore(inner={self.inner!r})"

    def publish(self, ballot_id: str, counts: Sequence[int]) -> None:
        """The final tally of ``ballot_id``: one count per option, in option order."""
        with self._lock:
            self._final[str(ballot_id)] = tuple(int(n) for n in counts)

    def add_ballot(self, ballot: Any) -> None:
        """Delegated."""
        self.inner.add_ballot(ballot)

    def ballot(self, ballot_id: str) -> Any:
        """Delegated."""
        return self.inner.ballot(ballot_id)

    def close(self, ballot_id: str) -> None:
        """Delegated."""
        self.inner.close(ballot_id)

    def record(self, vote: Any) -> Any:
        """Delegated."""
        return self.inner.record(vote)

    def votes(self, ballot_id: str) -> list[Any]:
        """The published tally as anonymous records, else the wrapped store's votes."""
        from connectors.discord.votes import VoteRecord

        with self._lock:
            final = self._final.get(str(ballot_id))
        if final is None:
            return self.inner.votes(ballot_id)
        out = []
        for option, count in enumerate(final):
            for _ in range(count):
                out.append(VoteRecord(ballot_id=str(ballot_id), voter_id=str(len(out) + 1),
                                      voter_username="", option_id=str(option), interaction_id="0"))
        return out


@dataclass(kw_only=True)
class Platforms:
    """Everything the membership flows act with besides the ledger."""

    spaces: dict[str, PlatformSpace]
    charter: Charter
    confirm_secret: SecretStr
    gateway_url: str = "http://127.0.0.1:8080"
    dsf_members: frozenset[str] = frozenset()
    # Sends outcome e-mails to applicants who gave an address (None: no e-mail; R-APP-4).
    mailer: Any = None
    _closers: list[Any] = field(default_factory=list, repr=False)

    def space(self, platform: str) -> PlatformSpace | None:
        """The WG's space on ``platform`` (``discourse`` / ``discord``), if served."""
        return self.spaces.get(str(platform))

    def instance_of(self, platform: str, stored: Any = None) -> str:
        """The instance an inbound event came from: the one its verifier stored with it
        (``InboundEvent.instance``), else (events stored before instances were kept) the one
        the connector of ``platform`` talks to."""
        if isinstance(stored, str) and stored:
            return stored
        space = self.space(platform)
        return space.instance if space is not None else ""

    def close(self) -> None:
        """Close every connector this object built."""
        for item in self._closers:
            try:
                item.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    @classmethod
    def build(cls, *, charter: Charter, discourse: Any = None, discord: Any = None,
              confirm_secret: str | SecretStr | None = None, gateway_url: str | None = None,
              dsf_members: frozenset[str] | set[str] | None = None,
              settings: MembershipSettings | None = None, mailer: Any = None) -> Platforms:
        """From connector instances (either may be None: that platform is not served)."""
        s = settings or MembershipSettings(_env_file=None)  # type: ignore[call-arg]
        spaces: dict[str, PlatformSpace] = {}
        if discourse is not None:
            conf = getattr(discourse, "settings", None)
            spaces["discourse"] = PlatformSpace(
                platform="discourse", connector=discourse,
                wg_channel=s.discourse_category or getattr(conf, "category", "Working Group"),
                wg_role=Role.group(s.discourse_group or getattr(conf, "group", "working-group")))
        if discord is not None:
            conf = getattr(discord, "settings", None)
            store = getattr(discord, "votes", None)
            if store is not None and not isinstance(store, TallyVoteStore):
                # Closed ballots show the ledger's tally (see TallyVoteStore).
                discord.votes = TallyVoteStore(store)
            spaces["discord"] = PlatformSpace(
                platform="discord", connector=discord,
                wg_channel=s.discord_channel or getattr(conf, "wg_channel_id", None) or "wg-private",
                wg_role=Role.group(s.discord_role))
        secret = confirm_secret if confirm_secret is not None else s.confirm_secret
        if secret is None:
            secret = SecretStr(secrets.token_hex(32))
        if isinstance(secret, str):
            secret = SecretStr(secret)
        return cls(spaces=spaces, charter=charter, confirm_secret=secret,
                   gateway_url=(gateway_url or s.gateway_url or _default_gateway_url()).rstrip("/"),
                   dsf_members=frozenset(dsf_members or ()), mailer=mailer)

    @classmethod
    def from_settings(cls) -> Platforms:
        """From the environment: each connector whose settings load (``from_env``) serves its
        platform; one that is not configured is left out (reported in the flow logs)."""
        from charterflow.charter import load_configured_charter
        from charterflow.settings import get_settings

        s = MembershipSettings()
        home = get_settings().home
        charter = load_configured_charter()
        built: dict[str, Any] = {}
        for name, module, cls_name in (("discourse", "connectors.discourse.connector", "DiscourseConnector"),
                                       ("discord", "connectors.discord.connector", "DiscordConnector")):
            try:
                mod = __import__(module, fromlist=[cls_name])
                built[name] = getattr(mod, cls_name).from_env()
            except Exception as exc:  # noqa: BLE001 - a platform not configured is not served
                import logging

                logging.getLogger("charterflow.membership").warning(
                    "membership: %s is not served (%s)", name, type(exc).__name__)
        members_file = s.dsf_members_file or (home / charter.eligibility.dsf_members_file)
        secret = resolve_confirm_secret(settings=s)
        platforms = cls.build(charter=charter, discourse=built.get("discourse"),
                              discord=built.get("discord"), confirm_secret=secret,
                              dsf_members=load_dsf_members(members_file), settings=s,
                              mailer=_mailer_from_settings())
        platforms._closers.extend(built.values())
        return platforms


def _mailer_from_settings() -> Any:
    """The SMTP mailer when ``CHARTERFLOW_SMTP_HOST`` is set, else None (no e-mail)."""
    from connectors.email import SmtpMailer, SmtpSettings

    settings = SmtpSettings()
    return SmtpMailer(settings=settings) if settings.host else None


def _default_gateway_url() -> str:
    # Links must reach the gateway: its public URL, else this machine on the gateway's port
    # (read under the gateway's own variable names; flows do not import the gateway).
    import os

    public = os.environ.get("CHARTERFLOW_GATEWAY_PUBLIC_URL", "").strip()
    if public:
        return public
    return f"http://127.0.0.1:{os.environ.get('CHARTERFLOW_GATEWAY_PORT', '').strip() or 8080}"


def resolve_confirm_secret(*, settings: MembershipSettings | None = None) -> SecretStr:
    """The secret signing confirmation and opt-in tokens, shared by the gateway (which checks a
    token before showing its page) and the worker (which makes and reads tokens):
    ``CHARTERFLOW_MEMBERSHIP_CONFIRM_SECRET`` when set, else a random one kept in
    ``$CHARTERFLOW_HOME/confirm-secret`` (created on first use, mode 0600), which serves every
    process of one machine. Processes on several machines must set the variable to one value."""
    s = settings or MembershipSettings()
    if s.confirm_secret is not None and s.confirm_secret.get_secret_value():
        return s.confirm_secret
    from charterflow.settings import get_settings

    return SecretStr(_stored_secret(get_settings().home))


def _stored_secret(home: Path) -> str:
    # The gateway and the worker may start at the same moment: the secret is written to a
    # private temporary file and linked into place, so exactly one value wins and nobody reads
    # a half-written file.
    import os
    import tempfile

    path = Path(home) / "confirm-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".confirm-secret.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won; use its value
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def load_dsf_members(path: Path | None) -> frozenset[str]:
    """The DSF Individual Members list (R-ELIG-2): TOML ``members = ["h", …]`` (or tables with
    ``handle``/``email``) or CSV with a ``handle`` (and optional ``email``) column."""
    if path is None or not Path(path).exists():
        return frozenset()
    path = Path(path)
    out: set[str] = set()
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                for col in ("handle", "email"):
                    if row.get(col):
                        out.add(row[col].strip())
        return frozenset(out)
    data = tomllib.loads(path.read_text())
    for item in data.get("members", []):
        if isinstance(item, str):
            out.add(item)
        elif isinstance(item, Mapping):
            out.update(str(item[k]) for k in ("handle", "email") if item.get(k))
    return frozenset(out)


# --------------------------------------------------------------------------------------------
# What the flows of this process use

_lock = threading.Lock()
_ledger: Ledger | None = None
_platforms: Platforms | None = None


def current_ledger() -> Ledger:
    """The ledger the flows write to (from settings unless :func:`use` installed one)."""
    global _ledger
    with _lock:
        if _ledger is None:
            from charterflow.settings import get_settings

            _ledger = Ledger(get_settings().ledger_url())
        return _ledger


def current_platforms() -> Platforms:
    """The platforms the flows act on (from settings unless :func:`use` installed them)."""
    global _platforms
    with _lock:
        if _platforms is None:
            _platforms = Platforms.from_settings()
        return _platforms


@contextmanager
def use(*, ledger: Ledger, platforms: Platforms) -> Iterator[None]:
    """Run the flows of this process against ``ledger`` and ``platforms`` inside the block."""
    global _ledger, _platforms
    with _lock:
        before = (_ledger, _platforms)
        _ledger, _platforms = ledger, platforms
    try:
        yield
    finally:
        with _lock:
            _ledger, _platforms = before


def role_text(role: Role) -> str:
    """The ledger's string for a platform role (the inverse of :func:`parse_role`)."""
    return role.name if role.kind is not RoleKind.GROUP else f"group:{role.name}"
