"""The Forum sandbox's site texts (R-GUIDE: the welcome message new users receive), kept apart
from ``sandbox.py`` and registered on its routes when that module loads.

``GET``/``PUT /admin/customize/site_texts/{id}.json`` as Discourse's
``Admin::SiteTextsController`` answers them: admins only (others get the 404 of an admin
route), ``{"site_text": {"value": ...}}`` in, ``{"site_text": {id, value, ...}}`` out; an
unknown id is a 404. Only the texts below are emulated.
"""

from __future__ import annotations

from typing import Any

from connectors.discourse.sandbox import _not_found, _route
from connectors.sandboxkit import Call, Reply

# The default welcome PM body, shortened (Discourse ships a longer one in server.en.yml).
WELCOME = "system_messages.welcome_user.text_body_template"
TEXTS = {WELCOME: "Thanks for joining %{site_name}, and welcome!\n\n%{new_user_tips}"}


def _texts(sb: Any) -> dict[str, str]:
    return sb.__dict__.setdefault("site_texts", {})


def _shown(sb: Any, text_id: str) -> dict[str, Any]:
    value = _texts(sb).get(text_id, TEXTS[text_id])
    return {
        "site_text": {
            "id": text_id,
            "value": value,
            "status": "customized" if text_id in _texts(sb) else "up_to_date",
            "can_revert": text_id in _texts(sb),
            "overridden": text_id in _texts(sb),
        }
    }


@_route("GET", "/admin/customize/site_texts/{id}.json", access="admin")
def _get_site_text(sb: Any, req: Call) -> Reply:
    text_id = req.params["id"]
    return Reply(200, _shown(sb, text_id)) if text_id in TEXTS else _not_found()


@_route("PUT", "/admin/customize/site_texts/{id}.json", access="admin")
def _put_site_text(sb: Any, req: Call) -> Reply:
    text_id = req.params["id"]
    if text_id not in TEXTS:
        return _not_found()
    data = req.form()
    given = data.get("site_text")
    fields: dict[str, Any] = given if isinstance(given, dict) else {"value": data.get("site_text[value]")}
    value = fields.get("value")
    if not isinstance(value, str):
        return Reply(
            400, {"errors": ["param is missing or the value is empty: site_text"], "error_type": "invalid_parameters"}
        )
    _texts(sb)[text_id] = value
    return Reply(200, _shown(sb, text_id))
