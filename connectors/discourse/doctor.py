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
  (``GET /categories.json``), the WG group exists (``GET /groups/{name}.json``);
- the webhook secret is set (its value is never shown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from connectors.discourse.client import DiscourseClient
from connectors.discourse.settings import DiscourseSettings
from connectors.doctor import Check, failed, passed
from connectors.errors import CharterflowError, ConfigError, FatalError

__all__ = ["check"]

P = "discourse"
_KEYS_PAGE = "Admin → Advanced → API keys"


def check(
    settings: DiscourseSettings,
    *,
    category: str | None = None,
    group: str | None = None,
    category_ids: Sequence[str] = (),
    transport: httpx.BaseTransport | None = None,
) -> list[Check]:
    """Every check of the site and key described by ``settings``; ``category``/``group`` override
    the settings' names; ``category_ids`` are other categories that must exist (the gateway's
    applications and ideas categories)."""
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
    out.append(_group_check(client, group))


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
        client.get(f"/groups/{quote(group, safe='')}.json", what=f"group {group!r}")
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
    return passed(P, f"group {group}", "exists")
