"""The inspector's buttons: POSTs (accepted only from the inspector's own pages, see
``app.create_app``'s middleware) that act as a seeded person through the requests the
platforms send, then go back to the page with a note."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response

from charterflow.inspector.state import InspectorDep, back

router = APIRouter(prefix="/act")


class BadNumber(ValueError):
    """A form field that must be a number (or one of a few names) is not one."""


# The Forum's flag types a person picks from a post's flag menu (PostActionType ids).
FLAG_TYPES = {"off_topic": 3, "inappropriate": 4, "spam": 8, "notify_moderators": 7}


@router.post("/discord/press")
async def discord_press(request: Request, inspector: InspectorDep) -> Response:
    form = await _form(request)
    body = {
        "type": "component",
        "user": form.get("user"),
        "channel_id": form.get("channel_id"),
        "message_id": form.get("message_id"),
        "custom_id": form.get("custom_id"),
    }
    return back(request, await _interact(inspector, body, f"{form.get('user')} pressed the button"))


@router.post("/discord/command")
async def discord_command(request: Request, inspector: InspectorDep) -> Response:
    form = await _form(request)
    body = {
        "type": "command",
        "user": form.get("user"),
        "name": form.get("name"),
        "options": _options(str(form.get("options") or "")),
        "channel_id": form.get("channel_id") or None,
    }
    return back(request, await _interact(inspector, body, f"{form.get('user')} ran /{form.get('name')}"))


@router.post("/forum/vote")
async def forum_vote(request: Request, inspector: InspectorDep) -> Response:
    form = await _form(request)
    running = inspector.running
    answer = await inspector.client.put(
        f"{running.urls['discourse']}/polls/vote",
        headers={"Api-Key": running.discourse_api_key or "", "Api-Username": str(form.get("user"))},
        json={
            "post_id": _number(form, "post_id"),
            "poll_name": form.get("poll_name"),
            "options": [form.get("option_id")],
        },
    )
    note = (
        f"{form.get('user')} voted"
        if answer.status_code == 200
        else f"The Forum refused the vote (HTTP {answer.status_code}): {answer.text[:200]}"
    )
    return back(request, note)


@router.post("/forum/flag")
async def forum_flag(request: Request, inspector: InspectorDep) -> Response:
    """Flag a post as a person would; the Forum sends its review to the gateway (R-SAFE-1)."""
    form = await _form(request)
    if (kind := FLAG_TYPES.get(str(form.get("flag_type")))) is None:
        raise BadNumber(f"flag_type must be one of {', '.join(FLAG_TYPES)}")
    message = str(form.get("message") or "").strip()
    running = inspector.running
    answer = await inspector.client.post(
        f"{running.urls['discourse']}/post_actions.json",
        headers={"Api-Key": running.discourse_api_key or "", "Api-Username": str(form.get("user"))},
        json={"id": _number(form, "post_id"), "post_action_type_id": kind, **({"message": message} if message else {})},
    )
    note = (
        f"{form.get('user')} flagged the post: the Forum sends its review to the gateway, which takes it as a report"
        if answer.status_code == 200
        else f"The Forum refused the flag (HTTP {answer.status_code}): {answer.text[:200]}"
    )
    return back(request, note)


@router.post("/slack/click")
async def slack_click(request: Request, inspector: InspectorDep) -> Response:
    form = await _form(request)
    running = inspector.running
    body = {
        "url": f"{running.gateway_url.rstrip('/')}/hooks/slack",
        "user": form.get("user"),
        "channel": form.get("channel"),
        "ts": form.get("ts"),
        "action_id": form.get("action_id"),
    }
    answer = await inspector.client.post(f"{running.urls['slack']}/_sandbox/interact", json=body)
    data = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    note = (
        f"Clicked as {form.get('user')}: the gateway answered HTTP {data.get('status')}"
        if answer.status_code == 200
        else f"Slack sandbox refused: {answer.text[:200]}"
    )
    return back(request, note)


def _options(text: str) -> dict[str, str]:
    """``a=1; b=two`` → ``{"a": "1", "b": "two"}`` (the command form's option field)."""
    out = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def _number(form: dict[str, str], name: str) -> int:
    value = str(form.get(name) or "").strip()
    if not value.isdigit() or len(value) > 18:
        raise BadNumber(f"{name} must be a number")
    return int(value)


async def _form(request: Request) -> dict[str, str]:
    # Parsed here (as the gateway does): no multipart support is needed for these small forms.
    body = (await request.body())[: 64 * 1024]
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


async def _interact(inspector: Any, body: dict[str, Any], done: str) -> str:
    """Deliver a signed interaction through the Discord sandbox; the note saying how it went."""
    answer = await inspector.client.post(f"{inspector.running.urls['discord']}/_sandbox/interactions", json=body)
    return _discord_note(answer, done)


def _discord_note(answer: httpx.Response, done: str) -> str:
    if answer.status_code != 200:
        return f"Discord refused: {answer.text[:200]}"
    outcome = answer.json()
    if outcome.get("failed"):
        return f"{done}, but the interaction failed: {outcome.get('error')}"
    return f"{done}; the gateway answered HTTP {outcome.get('status')}."
