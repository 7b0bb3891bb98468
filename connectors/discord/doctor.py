"""`charterflow doctor` for Discord: read-only checks of a bot's setup, one ``Check`` each.

What is checked (all ``GET``, nothing is changed):

- the token (``GET /users/@me``), the application id, the interactions public key, the
  privileged intents and the Interactions Endpoint URL (``GET /applications/@me``: ``id``,
  ``verify_key``, ``flags``, ``interactions_endpoint_url``: without one Discord sends buttons and
  commands over the Gateway, which charterflow does not read);
- the bot is in the configured guild (``GET /guilds/{id}/members/{bot}``);
- the bot's guild permissions, computed as Discord does from ``@everyone`` and its roles
  (https://discord.com/developers/docs/topics/permissions#permission-overwrites), against
  :data:`REQUIRED_PERMISSIONS`, the ones the connector's calls need;
- each role it manages (``wg-member``, moderator, admin: by configured id or by name) exists,
  is not a managed (integration) role, and sits below the bot's highest role (a bot changes only
  roles below it: https://discord.com/developers/docs/topics/permissions#permission-hierarchy);
- each configured channel exists and, after its permission overwrites, lets the bot post there;
- the server is a Community server (``GET /guilds/{id}``: ``features`` holds ``COMMUNITY``), which
  the guides' welcome screen and onboarding prompt need
  (https://discord.com/developers/docs/resources/guild#guild-object-guild-features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from connectors.discord.client import DiscordAPIError, DiscordClient
from connectors.discord.settings import DiscordSettings
from connectors.doctor import Check, failed, passed, reaches
from connectors.errors import CharterflowError, ConfigError

__all__ = [
    "CHANNEL_PERMISSIONS",
    "INTENTS",
    "PERMISSION_USES",
    "REQUIRED_PERMISSIONS",
    "HOOK_PATH",
    "check",
    "community_check",
    "channel_permissions",
    "guild_permissions",
]

P = "discord"
HOOK_PATH = "/hooks/discord"  # the gateway's route (gateway/routers/hooks.py)
ADMINISTRATOR = 1 << 3
# Permission bits (https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags)
# and the connector call that needs each one.
REQUIRED_PERMISSIONS: dict[str, tuple[int, ...]] = {
    "View Audit Log": (1 << 7,),  # moderation_entries: GET /guilds/{id}/audit-logs
    "View Channels": (1 << 10,),  # everything in a channel
    "Send Messages": (1 << 11,),  # post, ballots, send_text
    "Read Message History": (1 << 16,),  # message search (activity), reading messages back
    "Manage Roles": (1 << 28,),  # grant / revoke; keep_onboarding_prompt
    "Manage Server": (1 << 5,),  # set_welcome, keep_onboarding_prompt
    # schedule_event; Manage Events alone no longer creates one since 2026-02-23 (Discord's change
    # log of 2025-11-20: https://github.com/discord/discord-api-docs/pull/7991)
    "Create Events": (1 << 44,),
    "Create Public Threads": (1 << 35,),  # post(): a thread on each message for replies
    "Create Private Threads": (1 << 36,),  # private_thread
    "Send Messages in Threads": (1 << 38,),  # reply
}
# What an operator loses without each one (the doctor says it).
PERMISSION_USES = {
    "View Audit Log": "reading the moderation log",
    "View Channels": "every channel the flows use",
    "Send Messages": "posts, ballots and notices",
    "Read Message History": "activity counts",
    "Manage Roles": "granting and revoking roles, the guides' onboarding prompt",
    "Manage Server": "the guides' welcome screen and onboarding prompt",
    "Create Events": "meeting and training events",
    "Create Public Threads": "a thread for replies on each post",
    "Create Private Threads": "private threads",
    "Send Messages in Threads": "replies in threads",
}
# Privileged intents, as application flags (full or "limited" bit), and why the connector needs them
# (https://discord.com/developers/docs/resources/application#application-object-application-flags).
INTENTS = {
    "Server Members Intent": ((1 << 14) | (1 << 15), "listing members (GET /guilds/{id}/members)"),
    "Message Content Intent": (
        (1 << 18) | (1 << 19),
        "reading people's messages: the common room's copies, message search for activity counts",
    ),
}
CHANNEL_PERMISSIONS = (
    "View Channels",
    "Send Messages",
    "Read Message History",
    "Create Public Threads",
    "Create Private Threads",
    "Send Messages in Threads",
)
_ROLES_PAGE = "Server Settings → Roles"


def guild_permissions(*, guild_id: str, roles: Mapping[str, Mapping[str, Any]], member_roles: Sequence[str]) -> int:
    """The member's base permissions: ``@everyone`` (the role whose id is the guild's) OR its roles;
    every bit when one of them has Administrator."""
    perms = int(roles.get(guild_id, {}).get("permissions", 0))
    for rid in member_roles:
        perms |= int(roles.get(rid, {}).get("permissions", 0))
    return -1 if perms & ADMINISTRATOR else perms


def channel_permissions(
    base: int, *, guild_id: str, member_id: str, member_roles: Sequence[str], overwrites: Sequence[Mapping[str, Any]]
) -> int:
    """``base`` after a channel's overwrites: ``@everyone``'s, then the member's roles' (allows and
    denies merged), then the member's own."""
    if base == -1:
        return -1
    by_id = {str(o.get("id")): o for o in overwrites}

    def apply(perms: int, allow: int, deny: int) -> int:
        return (perms & ~deny) | allow

    perms = base
    if guild_id in by_id:
        o = by_id[guild_id]
        perms = apply(perms, int(o.get("allow", 0)), int(o.get("deny", 0)))
    allow = deny = 0
    for rid in member_roles:
        if rid in by_id and int(by_id[rid].get("type", 0)) == 0:
            allow |= int(by_id[rid].get("allow", 0))
            deny |= int(by_id[rid].get("deny", 0))
    perms = apply(perms, allow, deny)
    if member_id in by_id and int(by_id[member_id].get("type", 0)) == 1:
        o = by_id[member_id]
        perms = apply(perms, int(o.get("allow", 0)), int(o.get("deny", 0)))
    return perms


def _lacking(perms: int, names: Sequence[str]) -> list[str]:
    if perms == -1:
        return []
    return [name for name in names if not any(perms & bit for bit in REQUIRED_PERMISSIONS[name])]


def check(
    settings: DiscordSettings,
    *,
    channels: Sequence[str] = (),
    wg_role: str = "wg-member",
    interactions_url: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[Check]:
    """Every check of the bot described by ``settings``. ``channels`` are the channels the flows
    post to (ids or names; default the WG channel setting, else ``wg-private``); ``wg_role`` is the
    WG role's name when ``CHARTERFLOW_DISCORD_WG_MEMBER_ROLE_ID`` is unset; ``interactions_url``
    is where Discord must send interactions (the gateway's public URL and route), ``None`` when
    unknown (then any URL ending in the route)."""
    client = DiscordClient.from_settings(settings, max_retries=1, max_forbidden=100, transport=transport)
    out: list[Check] = []
    try:
        _checks(
            client,
            settings,
            out,
            channels=list(channels) or [settings.wg_channel_id or "wg-private"],
            wg_role=wg_role,
            endpoint=interactions_url,
        )
    finally:
        client.close()
    return out


def _get(client: DiscordClient, template: str, *, what: str, path: Mapping[str, str] | None = None) -> Any:
    return client.json(client.request("GET", template, path=path, what=what), what=what)


def _checks(
    client: DiscordClient,
    s: DiscordSettings,
    out: list[Check],
    *,
    channels: list[str],
    wg_role: str,
    endpoint: str | None,
) -> None:
    me = _token_check(client, s, out)
    if me is None:
        return
    bot_id = str(me.get("id"))
    try:
        app = _get(client, "/applications/@me", what="the application")
    except CharterflowError as exc:
        out.append(
            failed(
                P,
                "application",
                f"cannot read the bot's application: {exc}",
                "use the token of the application's own bot",
            )
        )
    else:
        out.extend(_application_checks(app, s))
        out.append(endpoint_check(app, endpoint))
    member = _guild_member(client, s, out, bot_id=bot_id)
    if member is None:
        return
    bot_roles = [str(r) for r in member.get("roles") or []]
    guild = {"guild_id": s.guild_id}
    roles = {str(r["id"]): r for r in _get(client, "/guilds/{guild_id}/roles", path=guild, what="the roles")}
    perms = guild_permissions(guild_id=s.guild_id, roles=roles, member_roles=bot_roles)
    own = [roles[r] for r in bot_roles if r in roles]
    top = max(own, key=lambda r: (int(r.get("position", 0)), int(r["id"])), default=None)
    out.append(_permissions_check(perms, top_name=str(top.get("name")) if top else "@everyone"))
    for label, configured, setting, name in (
        ("wg-member", s.wg_member_role_id, "WG_MEMBER_ROLE_ID", wg_role),
        ("moderator", s.moderator_role_id, "MODERATOR_ROLE_ID", "moderator"),
        ("admin", s.admin_role_id, "ADMIN_ROLE_ID", "admin"),
    ):
        out.append(_role_check(label, configured, setting, name, roles=roles, top=top))
    rows = _get(client, "/guilds/{guild_id}/channels", path=guild, what="the channels")
    for ref in dict.fromkeys(c for c in channels if c):
        out.append(_channel_check(ref, rows, s, base=perms, bot_id=bot_id, bot_roles=bot_roles))
    out.append(community_check(_get(client, "/guilds/{guild_id}", path=guild, what="the guild")))


def community_check(guild: Mapping[str, Any]) -> Check:
    """Whether the server is a Community server (pure): only one can have a welcome screen and
    onboarding (the ``COMMUNITY`` guild feature), where ``guides-publish`` points newcomers."""
    if "COMMUNITY" in (guild.get("features") or ()):
        return passed(P, "community", "a Community server: the welcome screen and onboarding are available")
    return failed(
        P,
        "community",
        f"{guild.get('name')!r} is not a Community server: Discord gives it no welcome screen or onboarding, "
        "where the guides point newcomers",
        "Server Settings → Enable Community (it asks for a rules channel and verification settings)",
    )


def _token_check(client: DiscordClient, s: DiscordSettings, out: list[Check]) -> Any:
    """The bot user the token belongs to, or ``None`` (and why) when Discord refuses it."""
    try:
        me = _get(client, "/users/@me", what="the bot user")
    except ConfigError:
        out.append(
            failed(
                P,
                "token",
                "Discord refuses the bot token (HTTP 401)",
                "set CHARTERFLOW_DISCORD_TOKEN to the token under Developer Portal → your "
                "application → Bot → Reset Token",
            )
        )
        return None
    except CharterflowError as exc:
        out.append(
            failed(
                P,
                "token",
                f"Discord API at {s.api_url} did not answer: {type(exc).__name__}",
                "check CHARTERFLOW_DISCORD_API_URL and this machine's network access to it",
            )
        )
        return None
    out.append(passed(P, "token", f"valid, bot user {str(me.get('username'))!r} ({me.get('id')})"))
    return me


def endpoint_check(app: Mapping[str, Any], url: str | None) -> Check:
    """Whether Discord sends interactions to the gateway (pure): the application's Interactions
    Endpoint URL is ``url``, or when that is unknown, some URL ending in the gateway's route."""
    found = str(app.get("interactions_endpoint_url") or "").rstrip("/")
    fix = "Developer Portal → your application → General Information → Interactions Endpoint URL: " + (
        url or "<the gateway>" + HOOK_PATH
    )
    if not found:
        return failed(
            P,
            "interactions URL",
            "unset: Discord sends buttons, commands and forms over the Gateway, which charterflow does not read",
            fix,
        )
    if not reaches(found, url, HOOK_PATH):
        return failed(P, "interactions URL", f"Discord sends interactions to {found}, not to the gateway", fix)
    return passed(P, "interactions URL", f"Discord sends interactions to {found}")


def _application_checks(app: Mapping[str, Any], s: DiscordSettings) -> list[Check]:
    """The application id, the interactions key and the privileged intents; pure."""
    out: list[Check] = []
    if str(app.get("id")) != s.application_id:
        out.append(
            failed(
                P,
                "application id",
                f"the token's application is {app.get('id')}, CHARTERFLOW_DISCORD_APPLICATION_ID is {s.application_id}",
                f"set CHARTERFLOW_DISCORD_APPLICATION_ID to {app.get('id')} (General Information)",
            )
        )
    else:
        out.append(passed(P, "application id", f"{s.application_id} matches the token"))
    if str(app.get("verify_key", "")).lower() != s.public_key:
        out.append(
            failed(
                P,
                "interactions key",
                "CHARTERFLOW_DISCORD_PUBLIC_KEY is not this application's "
                "public key: every interaction would be refused (401)",
                "copy General Information → Public Key into CHARTERFLOW_DISCORD_PUBLIC_KEY",
            )
        )
    else:
        out.append(passed(P, "interactions key", "CHARTERFLOW_DISCORD_PUBLIC_KEY matches the application"))
    flags = int(app.get("flags") or 0)
    off = [name for name, (bits, _) in INTENTS.items() if not flags & bits]
    if off:
        out.append(
            failed(
                P,
                "intents",
                "off: " + "; ".join(f"{n} (for {INTENTS[n][1]})" for n in off),
                "Developer Portal → your application → Bot → Privileged Gateway Intents: turn on " + " and ".join(off),
            )
        )
    else:
        out.append(passed(P, "intents", "Server Members and Message Content intents are on"))
    return out


def _guild_member(client: DiscordClient, s: DiscordSettings, out: list[Check], *, bot_id: str) -> Any:
    """The bot's guild member object, or ``None`` (and why) when it is not in the guild."""
    try:
        member = _get(
            client,
            "/guilds/{guild_id}/members/{user_id}",
            path={"guild_id": s.guild_id, "user_id": bot_id},
            what="the bot's guild membership",
        )
    except DiscordAPIError as exc:
        if exc.code == 10004:
            detail = f"no guild {s.guild_id} for this bot (Unknown Guild)"
        else:
            detail = f"the bot is not a member of guild {s.guild_id} ({exc.code or exc.status})"
        out.append(
            failed(
                P,
                "guild",
                detail,
                "set CHARTERFLOW_DISCORD_GUILD_ID to the server's id (Copy Server "
                "ID) and invite the bot with the bot and applications.commands scopes",
            )
        )
        return None
    except CharterflowError as exc:
        out.append(failed(P, "guild", f"cannot read guild {s.guild_id}: {exc}", "see the error"))
        return None
    out.append(passed(P, "guild", f"the bot is a member of guild {s.guild_id}"))
    return member


def _permissions_check(perms: int, *, top_name: str) -> Check:
    missing = _lacking(perms, list(REQUIRED_PERMISSIONS))
    if missing:
        return failed(
            P,
            "permissions",
            "the bot lacks " + "; ".join(f"{n} (for {PERMISSION_USES[n]})" for n in missing),
            f"{_ROLES_PAGE} → {top_name!r} → Permissions: turn on " + ", ".join(missing),
        )
    return passed(P, "permissions", "Administrator" if perms == -1 else "has " + ", ".join(REQUIRED_PERMISSIONS))


def _role_check(
    label: str,
    configured: str | None,
    setting: str,
    name: str,
    *,
    roles: Mapping[str, Mapping[str, Any]],
    top: Mapping[str, Any] | None,
) -> Check:
    var = f"CHARTERFLOW_DISCORD_{setting}"
    if configured:
        role = roles.get(configured)
        if role is None:
            return failed(
                P,
                f"role {label}",
                f"{var}={configured} is not a role of this guild",
                f"{_ROLES_PAGE} → right-click the role → Copy Role ID, into {var}",
            )
    else:
        found = [r for r in roles.values() if str(r.get("name", "")).lower() == name.lower()]
        if len(found) != 1:
            problem = "several roles are" if found else "no role is"
            return failed(
                P,
                f"role {label}",
                f"{var} is unset and {problem} called {name!r}",
                f"set {var} to the role's id, or create one role called {name!r}",
            )
        role = found[0]
    shown = f"{role.get('name')!r} ({role['id']})"
    if role.get("managed"):
        return failed(
            P,
            f"role {label}",
            f"{shown} is managed by an integration: no bot can grant it",
            f"use a normal role for {label} ({var})",
        )
    if top is None or (int(role.get("position", 0)), int(role["id"])) >= (int(top.get("position", 0)), int(top["id"])):
        above = top.get("name") if top else "the bot's role"
        return failed(
            P,
            f"role {label}",
            f"{shown} is not below the bot's highest role {above!r}: the bot cannot grant or revoke it",
            f"{_ROLES_PAGE}: drag {above!r} above {role.get('name')!r}",
        )
    return passed(P, f"role {label}", f"{shown}, below the bot's role {top.get('name')!r}")


def _channel_check(
    ref: str, rows: Sequence[Mapping[str, Any]], s: DiscordSettings, *, base: int, bot_id: str, bot_roles: Sequence[str]
) -> Check:
    wanted = ref.strip().lstrip("#")
    row = next((r for r in rows if str(r.get("id")) == wanted), None) or next(
        (r for r in rows if str(r.get("name", "")).lower() == wanted.lower()), None
    )
    if row is None:
        setting = "CHARTERFLOW_DISCORD_WG_CHANNEL_ID" if wanted == s.wg_channel_id else "the channel setting"
        return failed(
            P,
            f"channel {ref}",
            f"no channel {ref!r} in guild {s.guild_id} (or the bot cannot see it)",
            f"right-click the channel → Copy Channel ID, into {setting}; give the bot View Channel there",
        )
    perms = channel_permissions(
        base,
        guild_id=s.guild_id,
        member_id=bot_id,
        member_roles=bot_roles,
        overwrites=row.get("permission_overwrites") or [],
    )
    shown = f"#{row.get('name')} ({row.get('id')})"
    missing = _lacking(perms, CHANNEL_PERMISSIONS)
    if missing:
        return failed(
            P,
            f"channel {ref}",
            f"in {shown} the bot lacks " + ", ".join(missing),
            f"Edit Channel → Permissions: allow {', '.join(missing)} for the bot's role",
        )
    return passed(P, f"channel {ref}", f"{shown}: the bot can post, thread and read there")
