"""The Forum sandbox's site texts (R-GUIDE: the welcome message new users receive), kept apart
from ``sandbox.py`` and registered on its routes when that module loads.

``GET``/``PUT /admin/customize/site_texts/{id}.json`` as Discourse's
``Admin::SiteTextsController`` answers them: admins only (others get the 404 of an admin
route), ``{"site_text": {"value": ...}}`` in, ``{"site_text": {id, value, ...}}`` out; an
id that is no I18n key (undotted) is a 404, any other id but those below is not emulated (501).
"""

from __future__ import annotations

from connectors.discourse.sandbox import DiscourseSandbox, _error, _invalid_parameters, _not_found, _route
from connectors.sandboxkit import NOT_EMULATED_STATUS, Call, Reply, not_emulated

# The default welcome PM body, shortened (Discourse ships a longer one in server.en.yml).
TEXTS = {
    "system_messages.welcome_user.text_body_template": (
        "Thanks for joining %{site_name}, and welcome!\n\n%{new_user_tips}"
    )
}


def _text_id(sb: DiscourseSandbox, req: Call) -> str | Reply:
    # Discourse's text ids are dotted I18n keys ("js.topic.create"): one the sandbox lacks may be
    # Discourse's, so it is not emulated, not "not found"; an undotted id is no key at all.
    if (text_id := req.params["id"]) in TEXTS:
        return text_id
    if "." not in text_id:
        return _not_found()
    return _error(NOT_EMULATED_STATUS, not_emulated(req.method, req.path), "not_emulated")


@_route("GET", "/admin/customize/site_texts/{id}.json", access="admin", find=_text_id)
@_route("PUT", "/admin/customize/site_texts/{id}.json", access="admin", find=_text_id)
def _site_text(sb: DiscourseSandbox, req: Call, text_id: str) -> Reply:
    texts: dict[str, str] = sb.__dict__.setdefault("site_texts", {})
    if req.method == "PUT":
        data = req.form()
        fields = (
            data["site_text"] if isinstance(data.get("site_text"), dict) else {"value": data.get("site_text[value]")}
        )
        if not isinstance(value := fields.get("value"), str):
            return _invalid_parameters("param is missing or the value is empty: site_text")
        texts[text_id] = value
    customized = text_id in texts
    return Reply(
        200,
        {
            "site_text": {
                "id": text_id,
                "value": texts.get(text_id, TEXTS[text_id]),
                "status": "customized" if customized else "up_to_date",
                "can_revert": customized,
                "overridden": customized,
            }
        },
    )
