"""The Forum sandbox's webhook event log, kept apart from ``sandbox.py`` and registered on its
routes when that module loads: what an admin (or charterflow's redelivery pass) reads and sends
again when a delivery failed.

``GET /admin/api/web_hook_events/{id}.json`` and ``POST
/admin/api/web_hooks/{id}/events/{event_id}/redeliver`` as ``Admin::WebHooksController``
answers them: admins only; the webhook's deliveries newest first, 50 a page by ``offset``
(``AdminWebHookEventSerializer``; status -1 for a delivery that got no answer); a redelivery
sends the stored body and headers again, its event id too (``redelivering`` until sent).
"""

from __future__ import annotations

import json
import time
from typing import Any

from connectors.discourse.sandbox import DiscourseSandbox, _int_param, _not_found, _route
from connectors.sandboxkit import Call, Reply

_PAGE = 50


def _hook(sb: DiscourseSandbox, req: Call) -> int | Reply:
    # The sandbox has one webhook, id 1 (shapes.json WEB_HOOK), listed when it has a URL.
    return 1 if sb.webhook.url and req.params["id"] == "1" else _not_found()


def _event_json(sb: DiscourseSandbox, event: dict[str, Any]) -> dict[str, Any]:
    pending = any(p["event_id"] == str(event["id"]) for p in sb.webhook_pending)
    return {
        **event,
        "request_url": sb.webhook.url,
        "response_headers": "{}",
        "response_body": "",
        "duration": 0,
        "redelivering": pending,
    }


@_route("GET", "/admin/api/web_hook_events/{id}.json", access="admin", find=_hook)
def _events(sb: DiscourseSandbox, req: Call, hook_id: int) -> Reply:
    offset = max(0, _int_param(req.arg("offset") or "0") or 0)
    rows = sorted(sb.hook_events.values(), key=lambda e: -e["id"])
    return Reply(
        200,
        {
            "web_hook_events": [_event_json(sb, e) for e in rows[offset : offset + _PAGE]],
            "total_rows_web_hook_events": len(rows),
            "load_more_web_hook_events": f"/admin/api/web_hook_events/{hook_id}.json?offset={offset + _PAGE}",
            "extras": {"web_hook_id": hook_id},
        },
    )


@_route("POST", "/admin/api/web_hooks/{id}/events/{event_id}/redeliver", access="admin", find=_hook)
def _redeliver(sb: DiscourseSandbox, req: Call, hook_id: int) -> Reply:
    if (event := sb.hook_events.get(req.params["event_id"])) is None:
        return _not_found()
    headers = json.loads(event["headers"])
    # Sent once, as Discourse's redelivery is (no retry schedule after it).
    sb.webhook_pending.append(
        {
            "event_id": str(event["id"]),
            "event": headers.get("X-Discourse-Event"),
            "url": sb.webhook.url,
            "body": event["payload"],
            "headers": headers,
            "attempts": len(sb.settings.webhook_retry_delays),
            "due": time.time(),
        }
    )
    sb.resume_webhooks()
    return Reply(200, {"web_hook_event": _event_json(sb, event)})
