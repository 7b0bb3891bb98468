"""`charterflow doctor` for Discourse: read-only checks of the API key and the configured names.

- the key is Global (``GET /session/scopes.json``, which Discourse answers to any key, lists a
  granular key's scopes): a granular key is refused every call its scopes do not cover with the
  same 403 as a wrong key, and none covers what charterflow needs;
- the key and ``Api-Username`` are accepted (``GET /u/{username}.json``) and that account is an
  admin (``user.admin``);
- the key reaches admin-only routes: ``GET /admin/site_settings.json`` sits behind Discourse's
  ``AdminConstraint``, which answers **404** (not 403) to a non-admin, and a scoped key that does
  not cover it is refused (403). The connector needs such routes (``grant_moderation``…);
- the WG category exists and is private (``read_restricted``), any extra category ids exist
  (``GET /categories.json``), the WG group exists (``GET /groups/{name}.json``) and is not one of
  Discourse's automatic groups (whose members it sets itself);
- the WG group may reply in the WG category (``GET /c/{id}/show.json``, its
  ``group_permissions``): the poll plugin takes a vote only from someone who may post in the
  ballot's topic, so a group that may only see the category cannot vote there;
- a webhook sends to the gateway (``GET /admin/api/web_hooks.json``): to
  ``<CHARTERFLOW_GATEWAY_PUBLIC_URL>/hooks/discourse`` when that is set, else to some
  ``…/hooks/discourse``; active, as JSON, with the events charterflow acts on
  (``WEBHOOK_EVENTS``), signed with CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET (compared, never shown),
  its last delivery not failed;
- the webhook secret is set (its value is never shown).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from connectors.discourse.client import DiscourseClient
from connectors.discourse.settings import DiscourseSettings
from connectors.doctor import Check, failed, passed, reaches
from connectors.errors import CharterflowError, ConfigError, FatalError

__all__ = ["HOOK_PATH", "WEBHOOK_EVENTS", "check", "webhook_check"]

P = "discourse"
_KEYS_PAGE = "Admin → Advanced → API keys"
_HOOKS_PAGE = "Admin → Advanced → API → Webhooks"
# What charterflow acts on (flows.inbox_routing): applications and ideas (topics), the common
# room, /help and moderators' commands (posts), community reports (a flag is a post's review).
WEBHOOK_EVENTS = (
    "topic_created",
    "post_created",
    "post_edited",
    "post_destroyed",
    "reviewable_created",
    "reviewable_updated",
)
HOOK_PATH = "/hooks/discourse"  # the gateway's route (gateway/routers/hooks.py)


def check(
    settings: DiscourseSettings,
    *,
    category: str | None = None,
    group: str | None = None,
    category_ids: Sequence[str] = (),
    webhook_url: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[Check]:
    """Every check of the site and key described by ``settings``; ``category``/``group`` override
    the settings' names; ``category_ids`` are other categories that must exist (the gateway's
    applications and ideas categories); ``webhook_url`` is where the webhook must send (the
    gateway's public URL and route), ``None`` when unknown."""
    client = DiscourseClient.from_settings(settings, max_retries=1, transport=transport)
    out: list[Check] = []
    try:
        _checks(
            client,
            settings,
            out,
            category=category or settings.category,
            group=group or settings.group,
            category_ids=[c for c in category_ids if c],
        )
        if out and all(c.ok for c in out if c.name in ("key scope", "api key")):
            out.append(_webhook_check(client, settings, webhook_url))
    finally:
        client.close()
    if settings.webhook_secret is not None and settings.webhook_secret.get_secret_value():
        out.append(passed(P, "webhook secret", "CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET is set"))
    else:
        out.append(
            failed(
                P,
                "webhook secret",
                "CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET is unset: every Forum webhook is refused",
                "Admin → API → Webhooks: set a secret on the webhook and the "
                "same value in CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET",
            )
        )
    return out


def _checks(
    client: DiscourseClient,
    s: DiscourseSettings,
    out: list[Check],
    *,
    category: str,
    group: str,
    category_ids: list[str],
) -> None:
    who = s.api_username
    if not _key_is_global(client, out):
        return
    user = _api_user(client, s, out)
    if user is None:
        return
    if user.get("admin"):
        out.append(passed(P, "admin account", f"{who!r} is an admin"))
    else:
        out.append(
            failed(
                P,
                "admin account",
                f"{who!r} is not an admin: moderators and groups cannot be granted",
                f"Admin → Users → {who} → Grant Admin, or act as an admin account",
            )
        )
    out.append(_admin_scope_check(client))
    try:
        data: Any = client.get("/categories.json", what="the categories")
        cats = (data.get("category_list") or {}).get("categories") or []
    except CharterflowError as exc:
        out.append(failed(P, f"category {category}", f"cannot list categories: {exc}", "see the error"))
    else:
        out.extend(_category_checks(cats, who=who, category=category, group=group, category_ids=category_ids))
        found = next((c for c in cats if str(c.get("name", "")).lower() == category.lower()), None)
        if found is not None:
            out.append(_vote_check(client, found, category=category, group=group))
    out.append(_group_check(client, group))


def _vote_check(client: DiscourseClient, found: dict[str, Any], *, category: str, group: str) -> Check:
    """The WG group may post in the WG category: ``DiscoursePoll::Poll.change_vote`` refuses a
    vote from whoever ``Guardian#can_create_post?`` refuses in the ballot's topic ("You can't vote
    because you can't post in this topic", plugins/poll/lib/poll.rb). Permission types: 1 Create,
    2 Reply, 3 See."""
    name = f"votes in {category}"
    try:
        shown: Any = client.get(f"/c/{int(found['id'])}/show.json", what=f"category {category!r}")
    except CharterflowError as exc:
        return failed(P, name, f"cannot read the category's permissions: {exc}", "see the error")
    kinds = {
        str(p.get("group_name", "")).lower(): p.get("permission_type")
        for p in (shown.get("category") or {}).get("group_permissions") or []
        if isinstance(p, dict)
    }
    if any(kinds.get(g) in (1, 2) for g in (group.lower(), "everyone")):
        return passed(P, name, f"the {group!r} group may reply in {category!r}, so its members can vote")
    return failed(
        P,
        name,
        f"the {group!r} group may not reply in {category!r}: Discourse refuses its members' votes "
        "there (\"You can't vote because you can't post in this topic\")",
        f"Category settings → Security: give {group!r} Create or Reply (not only See)",
    )


def _key_is_global(client: DiscourseClient, out: list[Check]) -> bool:
    """False (and why) for a granular key; True also when the site does not answer the question
    (a wrong key, an old site): the checks after it say what is wrong."""
    try:
        scopes = client.get("/session/scopes.json", what="the API key's scopes").get("scopes") or []
    except CharterflowError:
        return True
    if not scopes:
        out.append(passed(P, "key scope", "Global"))
        return True
    names = ", ".join(f"{s.get('resource')}:{s.get('key')}" for s in scopes)
    out.append(
        failed(
            P,
            "key scope",
            f"a granular key ({names}): Discourse refuses it, as a wrong key, every call its scopes do "
            "not cover, and none covers grant_moderation, polls or the admin user view",
            f"{_KEYS_PAGE}: create a key with Scope Global for an admin account and set it in "
            "CHARTERFLOW_DISCOURSE_API_KEY",
        )
    )
    return False


def _api_user(client: DiscourseClient, s: DiscourseSettings, out: list[Check]) -> Any:
    """The API user's record, or ``None`` (and why) when the site refuses the key or the user."""
    who = s.api_username
    try:
        user = client.get(f"/u/{quote(who, safe='')}.json", what=f"the API user {who!r}").get("user") or {}
    except ConfigError:
        out.append(
            failed(
                P,
                "api key",
                f"the site refuses the key for Api-Username {who!r}",
                f"set CHARTERFLOW_DISCOURSE_API_KEY to a key from {_KEYS_PAGE} (User Level: single "
                f"user {who!r}, Scope: Global), or CHARTERFLOW_DISCOURSE_API_USERNAME to its user",
            )
        )
        return None
    except FatalError as exc:
        if exc.status == 404:
            out.append(
                failed(
                    P,
                    "api key",
                    f"no user {who!r} on the site",
                    "set CHARTERFLOW_DISCOURSE_API_USERNAME to the admin account the key acts as",
                )
            )
        else:
            out.append(failed(P, "api key", f"{s.url} answered: {exc}", "check CHARTERFLOW_DISCOURSE_URL"))
        return None
    except CharterflowError as exc:
        out.append(
            failed(
                P,
                "api key",
                f"{s.url} did not answer: {type(exc).__name__}",
                "check CHARTERFLOW_DISCOURSE_URL and this machine's network access to it",
            )
        )
        return None
    out.append(passed(P, "api key", f"accepted, acting as {who!r}"))
    return user


def _admin_scope_check(client: DiscourseClient) -> Check:
    try:
        client.request(
            "GET",
            "/admin/site_settings.json",
            what="an admin-only route",
            admin_route=True,
            params={"filter_names[]": "title"},
        )
    except FatalError as exc:
        if exc.status == 404:
            detail = "admin-only routes answer 404 to this key (its user is not an admin)"
        else:
            detail = f"admin-only routes are refused (HTTP {exc.status}): the key's scope does not cover them"
        return failed(
            P,
            "admin scope",
            detail,
            f"{_KEYS_PAGE}: create a key with Scope Global for an admin "
            "account (granular scopes lack grant_moderation, polls and the admin user view)",
        )
    except CharterflowError as exc:
        return failed(P, "admin scope", str(exc), "see the error")
    return passed(P, "admin scope", "the key reaches admin-only routes")


def _category_checks(cats: list[Any], *, who: str, category: str, group: str, category_ids: list[str]) -> list[Check]:
    """The WG category exists and is private; the other categories named exist; pure."""
    out: list[Check] = []
    found = next((c for c in cats if str(c.get("name", "")).lower() == category.lower()), None)
    if found is None:
        out.append(
            failed(
                P,
                f"category {category}",
                f"no category {category!r} visible to {who!r}",
                "create the private category, or set CHARTERFLOW_DISCOURSE_CATEGORY to its name",
            )
        )
    elif not found.get("read_restricted"):
        out.append(
            failed(
                P,
                f"category {category}",
                f"{category!r} ({found.get('id')}) is public: ballots "
                "and the WG's discussions would be visible to everyone",
                f"Category settings → Security: only the {group!r} group (and staff)",
            )
        )
    else:
        out.append(passed(P, f"category {category}", f"exists ({found.get('id')}) and is private"))
    ids = {str(c.get("id")) for c in cats}
    for cid in category_ids:
        if cid in ids:
            out.append(passed(P, f"category id {cid}", "exists"))
        else:
            out.append(
                failed(
                    P,
                    f"category id {cid}",
                    f"no category {cid} visible to {who!r}",
                    "fix CHARTERFLOW_GATEWAY_DISCOURSE_APPLICATIONS_CATEGORIES / _IDEAS_CATEGORIES "
                    "(category ids, comma-separated)",
                )
            )
    return out


def _group_check(client: DiscourseClient, group: str) -> Check:
    try:
        shown: Any = client.get(f"/groups/{quote(group, safe='')}.json", what=f"group {group!r}")
    except FatalError as exc:
        if exc.status == 404:
            return failed(
                P,
                f"group {group}",
                f"no group {group!r}",
                "create it (Admin → Groups) or set CHARTERFLOW_DISCOURSE_GROUP to its name",
            )
        return failed(P, f"group {group}", str(exc), "see the error")
    except CharterflowError as exc:
        return failed(P, f"group {group}", str(exc), "see the error")
    if (shown.get("group") or {}).get("automatic"):
        # Guardian#can_edit_group? is false for an automatic group: Discourse refuses (403) every
        # change of its members (lib/guardian/group_guardian.rb).
        return failed(
            P,
            f"group {group}",
            f"{group!r} is one of Discourse's automatic groups: members cannot be added to it or removed",
            "create a group of your own (Admin → Groups) and set CHARTERFLOW_DISCOURSE_GROUP to its name",
        )
    return passed(P, f"group {group}", "exists")


def _webhook_check(client: DiscourseClient, s: DiscourseSettings, url: str | None) -> Check:
    try:
        listed: Any = client.get("/admin/api/web_hooks.json", what="the webhooks", admin_route=True)
    except CharterflowError as exc:
        return failed(P, "webhook", f"cannot list the webhooks: {exc}", "see the error")
    hooks = listed.get("web_hooks") if isinstance(listed, dict) else None
    return webhook_check(hooks if isinstance(hooks, list) else [], url=url, secret=s.webhook_secret)


def webhook_check(hooks: Sequence[Any], *, url: str | None, secret: Any) -> Check:
    """Whether one of the site's webhooks (``AdminWebHookSerializer`` objects) sends charterflow
    what it needs (pure); ``url``: the exact payload URL wanted, else any ending in the route."""
    mine = [h for h in hooks if isinstance(h, dict) and reaches(str(h.get("payload_url") or ""), url, HOOK_PATH)]
    setup = (
        f"{_HOOKS_PAGE}: a webhook with Payload URL {url or '<the gateway>' + HOOK_PATH}, Content Type "
        "application/json, Secret = CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET, Active, and the Topic, Post "
        "and Reviewable (created, updated) events"
    )
    if not mine:
        where = url or f"a gateway (…{HOOK_PATH})"
        return failed(P, "webhook", f"no webhook sends to {where}: the Forum's events never reach charterflow", setup)
    hook = next((h for h in mine if h.get("active")), mine[0])
    if problems := _hook_problems(hook, secret.get_secret_value() if secret is not None else ""):
        return failed(P, "webhook", f"the webhook to {hook.get('payload_url')}: " + "; ".join(problems), setup)
    return passed(P, "webhook", f"sends topics, posts and flags (reviews) to {hook.get('payload_url')}")


def _hook_problems(hook: dict[str, Any], secret: str) -> list[str]:
    """What keeps ``hook`` from sending charterflow its events (the secret compared, never shown)."""
    names = {str(e.get("name")) for e in hook.get("web_hook_event_types") or [] if isinstance(e, dict)}
    missing = [] if hook.get("wildcard_web_hook") else [e for e in WEBHOOK_EVENTS if e not in names]
    same_secret = bool(secret) and hmac.compare_digest(str(hook.get("secret") or "").encode(), secret.encode())
    checks = (
        (not hook.get("active"), "it is not active"),
        (hook.get("content_type") != 1, "its content type is not application/json"),
        (bool(missing), "it does not send " + ", ".join(missing)),
        (not same_secret, "its secret is not CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET"),
        (hook.get("last_delivery_status") == 2, "its last delivery failed (the webhook's Events tab says why)"),
    )
    return [text for bad, text in checks if bad]
