"""Which connector serves each capability on each platform, and the working group's spaces there.

A :class:`Platforms` holds one :class:`PlatformSpace` per community platform the WG runs on,
any number of them: the connector, the WG's private channel or category, the WG role or group,
and optionally a public announcements channel. :meth:`Platforms.from_settings` builds one
connector per configured platform (``CHARTERFLOW_PLATFORMS``, below) from the
``charterflow.connectors`` entry points, so a connector plugin is served by configuration alone.
Flows reach a connector only through the capability Protocols (``connectors.base``):
``space.capable(ButtonMessenger)`` is the connector when it is one, else ``None``.
Connector-specific settings (URLs, tokens, role ids) stay in each connector's own
``CHARTERFLOW_<PLATFORM>_*`` settings; this file only names the WG's spaces and the few
membership settings below.

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
``<PLATFORM>_CHANNEL``     the WG's private channel or category on ``<PLATFORM>`` (any configured
                           platform: ``MATRIX_CHANNEL``); default: the connector's
                           ``working_group_space()``, else ``working-group``
``<PLATFORM>_ROLE``        the WG's group or role there (default: as for the channel)
``DISCOURSE_CATEGORY``     the Forum's, as ``DISCOURSE_CHANNEL`` (kept for existing setups)
``DISCOURSE_GROUP``        the Forum's, as ``DISCOURSE_ROLE``
========================== =====================================================================

``CHARTERFLOW_PLATFORMS`` (comma-separated connector names) lists the community platforms
served; unset, every registered connector that serves a community (all but the Board's Slack),
the Forum and Discord first: one whose settings do not load is left out.
"""

from __future__ import annotations

import csv
import logging
import os
import secrets
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from charterflow.charter import load_configured_charter
from charterflow.settings import get_settings
from connectors.base import (
    AccountNames,
    BallotBox,
    ButtonMessenger,
    Directory,
    Instanced,
    MessageRef,
    Messenger,
    OperatorAccount,
    Role,
    RoleKind,
    RoleManager,
    TallyDisplay,
    UserRef,
    WorkingGroupHome,
)
from connectors.email import SmtpMailer, SmtpSettings
from connectors.registry import community_connectors, load_connector
from ledger import platforms as ledger_platforms
from ledger.db import Ledger
from rules import Charter
from rules.platforms import PlatformState

log = logging.getLogger("charterflow.membership")

__all__ = [
    "DEFAULT_PLATFORMS",
    "MembershipSettings",
    "PlatformSpace",
    "Platforms",
    "configured_platforms",
    "current_ledger",
    "current_platforms",
    "load_dsf_members",
    "parse_role",
    "resolve_confirm_secret",
    "use",
]

# The community platforms served when CHARTERFLOW_PLATFORMS is not set.
DEFAULT_PLATFORMS = ("discourse", "discord")
# Older names of the generic <PLATFORM>_CHANNEL / _ROLE settings, still read.
_SETTING_ALIASES = {("discourse", "channel"): "discourse_category", ("discourse", "role"): "discourse_group"}


class MembershipSettings(BaseSettings):
    """``CHARTERFLOW_MEMBERSHIP_*`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_MEMBERSHIP_", env_file=".env", extra="ignore")
    gateway_url: str | None = Field(
        default=None,
        description=("Public base URL of the gateway, for confirmation and opt-in links (default: the gateway's)."),
    )
    confirm_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Signs confirmation and opt-in tokens; shared with the gateway (default: random, kept in CHARTERFLOW_HOME)."
        ),
    )
    dsf_members_file: Path | None = Field(
        default=None,
        description=(
            "The DSF Individual Members list (R-ELIG-2), TOML members = [...] (default: "
            "CHARTERFLOW_HOME/dsf-members.toml)."
        ),
    )
    discourse_category: str | None = Field(
        default=None, description=("The Forum's private WG category (default: the connector's setting).")
    )
    discourse_group: str | None = Field(
        default=None, description=("The Forum's WG group (default: the connector's setting).")
    )
    discord_channel: str | None = Field(
        default=None, description=("The Discord WG channel (default: the connector's WG channel).")
    )
    discord_role: str = Field(default="wg-member", description="The Discord WG role's name.")

    def space_setting(self, platform: str, what: str) -> str | None:
        """``CHARTERFLOW_MEMBERSHIP_<PLATFORM>_<WHAT>`` (``what``: ``channel`` or ``role``) for any
        platform, else the declared field (or its older alias), else ``None``."""
        name = f"CHARTERFLOW_MEMBERSHIP_{platform.upper().replace('-', '_')}_{what.upper()}"
        value = os.environ.get(name, "").strip()
        if value:
            return value
        fields = self.model_dump()
        return fields.get(f"{platform}_{what}") or fields.get(_SETTING_ALIASES.get((platform, what), "")) or None


class PlatformsSettings(BaseSettings):
    """``CHARTERFLOW_PLATFORMS``: the community platforms served, by connector name."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_", env_file=".env", extra="ignore")
    platforms: str | None = Field(
        default=None,
        description=(
            "Comma-separated connector names (entry points of charterflow.connectors) serving the "
            "WG's community platforms (default: every registered community connector, the Forum "
            "and Discord first); the Board's Slack is never one of them."
        ),
    )


def configured_platforms(settings: PlatformsSettings | None = None) -> tuple[str, ...]:
    """The platform names ``CHARTERFLOW_PLATFORMS`` lists (lower case, in order, once each);
    unset: every registered community connector (``DEFAULT_PLATFORMS`` first), so an installed
    plugin is served once its own settings load."""
    raw = (settings or PlatformsSettings()).platforms
    if raw is None or not raw.strip():
        registered = community_connectors()
        names = [n for n in DEFAULT_PLATFORMS if n in registered] + sorted(
            n for n in registered if n not in DEFAULT_PLATFORMS
        )
    else:
        names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return tuple(dict.fromkeys(names))


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

    def capable(self, protocol: type) -> Any:
        """The connector when it implements ``protocol`` (a runtime-checkable Protocol of
        ``connectors.base``), else ``None``: how a flow asks "can this platform do X"."""
        return self.connector if isinstance(self.connector, protocol) else None

    @property
    def instance(self) -> str:
        """The platform instance the connector talks to (``Instanced``; ``""`` if it cannot say)."""
        return self.connector.instance if isinstance(self.connector, Instanced) else ""

    @property
    def directory(self) -> Directory | None:
        """The connector as a ``Directory`` when it is one."""
        return self.capable(Directory)

    @property
    def roles(self) -> RoleManager | None:
        """The connector as a ``RoleManager`` when it is one."""
        return self.capable(RoleManager)

    @property
    def messenger(self) -> Messenger | None:
        """The connector as a ``Messenger`` when it is one."""
        return self.capable(Messenger)

    @property
    def ballots(self) -> BallotBox | None:
        """The connector as a ``BallotBox`` when it is one."""
        return self.capable(BallotBox)

    def operator_name(self) -> str:
        """The account the connector acts as (``OperatorAccount``), else a neutral phrase."""
        account = self.capable(OperatorAccount)
        return account.operator_name() if account is not None else "the API admin"

    def prompt(
        self, *, user: UserRef, title: str, text: str, button_label: str, custom_id: str, key: str
    ) -> MessageRef:
        """A private message asking ``user`` to act: with a button where the connector is a
        ``ButtonMessenger`` (the press comes back as an interaction with ``custom_id``), else a
        plain direct message whose ``text`` holds the link."""
        buttons = self.capable(ButtonMessenger)
        if buttons is not None:
            return buttons.direct_message_with_button(
                user=user, title=title, text=text, button_label=button_label, custom_id=custom_id, key=key
            )
        return self.direct_message(user, title=title, text=text, key=key)

    def current(self, user: UserRef) -> UserRef:
        """``user`` under the name its account has now, read by its id where the connector is an
        ``AccountNames`` (people rename there, and another may take the old name); else as given."""
        names = self.capable(AccountNames)
        if not user.id or names is None:
            return user
        return replace(user, username=names.current_username(user))

    def direct_message(self, to: UserRef | str, *, title: str, text: str, key: str | None = None) -> MessageRef:
        """A private message to one person: an account (``UserRef``) under its ``current`` name,
        so a member who renamed is still reached, and never whoever took their old name."""
        messenger = self.messenger
        if messenger is None:
            raise LookupError(f"{self.platform}: no Messenger to reach {to!r}")
        name = self.current(to).username if isinstance(to, UserRef) else to
        return messenger.direct_message(recipients=[name], title=title, text=text, key=key)

    def close_ballot(self, ballot: Any, *, counts: Sequence[int] | None = None, result: str | None = None) -> Any:
        """Close ``ballot`` on this platform; ``result`` (one line, the ledger's tally merged
        across platforms) is shown on the closed ballot where the connector can; ``counts`` (one
        per option) is published first to a connector that is a ``TallyDisplay`` (it shows
        counts it keeps itself, while the WG's votes are cast in the ledger)."""
        box = self.ballots
        if box is None:
            raise LookupError(f"{self.platform}: no BallotBox")
        display = self.capable(TallyDisplay)
        if counts is not None and display is not None:
            display.publish_tally(str(ballot.id), counts)
        if result is not None:
            return box.close_ballot(ballot, result=result)
        return box.close_ballot(ballot)


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
    # The platforms the ledger's list served when built from settings (``from_settings``).
    served_from: tuple[str, ...] = ()
    built_from_settings: bool = field(default=False, repr=False)
    _closers: list[Any] = field(default_factory=list, repr=False)

    def space(self, platform: str) -> PlatformSpace | None:
        """The WG's space on ``platform`` (a connector name), if served."""
        return self.spaces.get(str(platform))

    def names(self) -> tuple[str, ...]:
        """The platforms served, in configured order (the seam for the ledger's platform list)."""
        return tuple(self.spaces)

    def capable(self, protocol: type) -> list[tuple[PlatformSpace, Any]]:
        """Each served space whose connector is a ``protocol``, with that connector (in order)."""
        found = [(space, space.capable(protocol)) for space in self.spaces.values()]
        return [(space, side) for space, side in found if side is not None]

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
    def build(
        cls,
        *,
        charter: Charter,
        confirm_secret: str | SecretStr | None = None,
        gateway_url: str | None = None,
        dsf_members: frozenset[str] | set[str] | None = None,
        settings: MembershipSettings | None = None,
        mailer: Any = None,
        **connectors: Any,
    ) -> Platforms:
        """From connector instances by platform name (``Platforms.build(charter=c, discourse=f,
        matrix=m)``), in that order; ``None`` leaves a platform unserved."""
        s = settings or MembershipSettings(_env_file=None)
        spaces: dict[str, PlatformSpace] = {}
        for name, connector in connectors.items():
            if connector is None:
                continue
            channel, group = "working-group", "working-group"
            if isinstance(connector, WorkingGroupHome):
                channel, group = connector.working_group_space()
            spaces[name] = PlatformSpace(
                platform=name,
                connector=connector,
                wg_channel=s.space_setting(name, "channel") or channel,
                wg_role=Role.group(s.space_setting(name, "role") or group),
            )
        secret = confirm_secret if confirm_secret is not None else s.confirm_secret
        if secret is None:
            secret = SecretStr(secrets.token_hex(32))
        if isinstance(secret, str):
            secret = SecretStr(secret)
        return cls(
            spaces=spaces,
            charter=charter,
            confirm_secret=secret,
            gateway_url=(gateway_url or s.gateway_url or _default_gateway_url()).rstrip("/"),
            dsf_members=frozenset(dsf_members or ()),
            mailer=mailer,
        )

    @classmethod
    def from_settings(cls, names: Sequence[str] | None = None) -> Platforms:
        """From the environment: each platform of ``names`` (default ``CHARTERFLOW_PLATFORMS``)
        whose connector is registered and whose settings load (``from_env``) is served; one that
        is not is left out (reported in the flow logs)."""
        s = MembershipSettings()
        home = get_settings().home
        charter = load_configured_charter()
        built: dict[str, Any] = {}
        wanted = names if names is not None else served_by_ledger(configured_platforms(), charter)
        for name in wanted:
            try:
                built[name] = load_connector(name).from_env()
            except Exception as exc:  # noqa: BLE001 - a platform not configured is not served
                log.warning("membership: %s is not served (%s)", name, type(exc).__name__)
        members_file = s.dsf_members_file or (home / charter.eligibility.dsf_members_file)
        secret = resolve_confirm_secret(settings=s)
        platforms = cls.build(
            charter=charter,
            confirm_secret=secret,
            dsf_members=load_dsf_members(members_file),
            settings=s,
            mailer=_mailer_from_settings(),
            **built,
        )
        platforms._closers.extend(built.values())
        platforms.served_from, platforms.built_from_settings = tuple(wanted), True
        return platforms


def served_by_ledger(names: Sequence[str], charter: Charter) -> list[str]:
    """``names`` less those the ledger's platform list (R-PLATFORM) does not serve: only an
    approved, trial or retiring platform is served (retiring: its roles are still to revoke), so
    an installed and configured connector is not used before the Board approves its platform.
    The list is read when the platforms are built (a process start)."""
    ledger = _ledger or Ledger(get_settings().ledger_url())
    try:
        with ledger.read() as session:
            states: Mapping[str, PlatformState | None] = ledger_platforms.states(
                session, charter_platforms=charter.platforms
            )
    except Exception as exc:  # noqa: BLE001 - no ledger yet (a first start): the charter's list
        log.warning(
            "membership: the ledger's platform list was not read (%s); serving the charter's", type(exc).__name__
        )
        states = {p: None for p in charter.platforms}
    finally:
        if ledger is not _ledger:
            ledger.dispose()
    serve = {p for p, st in states.items() if st is None or st.state in ("approved", "trial", "retiring")}
    left = [n for n in names if n not in serve]
    if left:
        log.info("membership: not served, not on the approved platforms' list: %s", ", ".join(left))
    return [n for n in names if n in serve]


def _mailer_from_settings() -> Any:
    """The SMTP mailer when ``CHARTERFLOW_SMTP_HOST`` is set, else None (no e-mail)."""
    settings = SmtpSettings()
    return SmtpMailer(settings=settings) if settings.host else None


def _default_gateway_url() -> str:
    # Links must reach the gateway: its public URL, else this machine on the gateway's port
    # (read under the gateway's own variable names; flows do not import the gateway).
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
    return SecretStr(_stored_secret(get_settings().home))


def _stored_secret(home: Path) -> str:
    # The gateway and the worker may start at the same moment: the secret is written to a
    # private temporary file and linked into place, so exactly one value wins and nobody reads
    # a half-written file.
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
_latest: Platforms | None = None  # the last one current_platforms built from settings
_checked_at = 0.0
# How often a long-running process (the inbox worker, the runner) re-reads the ledger's platform
# list: a platform the Board approved is served within this many seconds, without a restart.
REFRESH_SECONDS = 10.0


def current_ledger() -> Ledger:
    """The ledger the flows write to (from settings unless :func:`use` installed one)."""
    global _ledger
    with _lock:
        if _ledger is None:
            _ledger = Ledger(get_settings().ledger_url())
        return _ledger


def current_platforms() -> Platforms:
    """The platforms the flows act on (from settings unless :func:`use` installed them). Built
    from settings, they are built again when the ledger's platform list (R-PLATFORM) serves
    other platforms than at the last build (read at most every :data:`REFRESH_SECONDS`); the
    previous connectors are left to finish what they do (not closed)."""
    global _platforms, _latest, _checked_at
    with _lock:
        if _platforms is None:
            _platforms = _latest = Platforms.from_settings()
            _checked_at = time.monotonic()
        elif _platforms.built_from_settings:  # not a test's or another caller's, installed by use()
            if _latest is not None and _platforms is not _latest:
                _platforms = _latest  # a use() block of another thread restored an older build
            if time.monotonic() - _checked_at >= REFRESH_SECONDS:
                _checked_at = time.monotonic()
                wanted = tuple(served_by_ledger(configured_platforms(), _platforms.charter))
                if wanted != _platforms.served_from:
                    _platforms = _latest = Platforms.from_settings()
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
