"""Verification and parsing of Discourse webhooks.

Discourse signs each delivery with ``X-Discourse-Event-Signature: sha256=<hex HMAC-SHA256(secret,
raw body)>`` when the webhook has a secret (the server's ``Jobs::EmitWebHookEvent``; see
``specs/API-NOTES.md`` section 2, "Webhooks"). There is no timestamp, so no replay window: the
dedupe key built from ``X-Discourse-Event-Id`` is what stops a replay from acting twice.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from connectors.base import InboundEvent, instance_key, url_instance
from connectors.errors import InvalidSignature
from connectors.jsonbody import NotJson, read_json

__all__ = ["DiscourseWebhookVerifier", "sign_body", "SIGNATURE_HEADER"]

PLATFORM = "discourse"
SIGNATURE_HEADER = "X-Discourse-Event-Signature"


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-Discourse-Event-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class DiscourseWebhookVerifier:
    """Checks the signature of a webhook delivery and parses it into an ``InboundEvent``."""

    def __init__(self, *, secret: SecretStr, instance: str = "") -> None:
        if not secret.get_secret_value():
            raise ValueError("the webhook secret is empty")
        self._secret = secret
        self.instance = instance  # the site's host when known (connector settings); else per header

    def __repr__(self) -> str:
        return "DiscourseWebhookVerifier(secret=SecretStr('**********'))"

    def verify(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        """The parsed event; ``InvalidSignature`` for a missing/wrong signature or a bad body.

        The signature is checked over ``body`` exactly as received, before anything is parsed,
        with a constant-time comparison.
        """
        given = _header(headers, SIGNATURE_HEADER)
        if not given:
            raise InvalidSignature(f"Discourse webhook without {SIGNATURE_HEADER}", platform=PLATFORM, status=401)
        expected = sign_body(self._secret.get_secret_value(), body)
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode("ascii")):
            raise InvalidSignature("Discourse webhook signature does not match", platform=PLATFORM, status=401)
        return parse_event(headers=headers, body=body, instance=self.instance)


def event_instance(headers: Mapping[str, str], configured: str = "") -> str:
    """The Forum a delivery comes from: the host of ``X-Discourse-Instance`` (the site's base
    URL; Discourse sends it with every webhook), else ``configured``. The header is not signed,
    so a verifier that knows its site refuses a delivery naming another one (400)."""
    named = url_instance(_header(headers, "X-Discourse-Instance"))
    if configured and named and named != configured:
        raise InvalidSignature(
            f"Discourse webhook from another site ({named[:80]}, not {configured})", platform=PLATFORM, status=400
        )
    found = named or configured
    if not found:
        raise InvalidSignature("Discourse webhook without X-Discourse-Instance", platform=PLATFORM, status=400)
    return found


def parse_event(*, headers: Mapping[str, str], body: bytes, instance: str = "") -> InboundEvent:
    """Parse an already verified delivery (``topic_created``, ``post_created``, ``post_edited``,
    ``post_destroyed``, ``ping``, the Reviewable events, others).

    Other events are returned with their raw payload and no attributes but their type.
    ``instance``: the site's host when the caller knows it (see ``event_instance``).
    """
    event_id = _header(headers, "X-Discourse-Event-Id")
    event = _header(headers, "X-Discourse-Event") or ""
    event_type = _header(headers, "X-Discourse-Event-Type") or ""
    if not event_id or not event:
        raise InvalidSignature(
            "Discourse webhook lacks X-Discourse-Event-Id or X-Discourse-Event", platform=PLATFORM, status=400
        )
    instance = event_instance(headers, instance)
    try:
        payload, notes = read_json(body)
    except NotJson:
        raise InvalidSignature("Discourse webhook body is not JSON", platform=PLATFORM, status=400) from None
    if not isinstance(payload, dict):
        raise InvalidSignature("Discourse webhook body is not a JSON object", platform=PLATFORM, status=400)

    attributes: dict[str, str] = {"event_type": event_type}
    actor: str | None = None
    if event == "ping":
        attributes["ping"] = str(payload.get("ping", ""))
    elif event == "topic_created":
        topic = _object(payload.get("topic"))
        actor = _text(_object(topic.get("created_by")).get("username"))
        attributes.update(_pick(topic, topic_id="id", title="title", category_id="category_id", archetype="archetype"))
    elif event in ("post_created", "post_edited", "post_destroyed"):
        post = _object(payload.get("post"))
        actor = _text(post.get("username"))
        if isinstance(raw := post.get("raw"), str):
            attributes["text"] = readable_raw(raw, _header(headers, "X-Discourse-Instance") or "")
        attributes.update(
            _pick(
                post,
                post_id="id",
                topic_id="topic_id",
                post_number="post_number",
                category_id="category_id",
                raw="raw",
                topic_title="topic_title",
                user_id="user_id",
                name="name",
            )
        )
    elif event_type == "reviewable":  # a flag opens or adds to a post's review (no flag webhook)
        reviewable = _object(payload.get("reviewable"))
        attributes.update(
            _pick(reviewable, reviewable_id="id", reviewable_type="type", post_id="target_id", topic_id="topic_id")
        )
    # Event ids are per site; the instance keeps two sites' ids apart.
    return InboundEvent(
        platform=PLATFORM,
        dedupe_key=instance_key(PLATFORM, instance, event_id),
        instance=instance,
        kind=event,
        actor=actor,
        attributes=attributes,
        data=payload,
        notes=tuple(notes),
    )


# An upload in a post's raw is Discourse's short URL, upload://<base62 SHA1>.<ext>, which only
# the Forum's own composer resolves; the site's /uploads/short-url/<base62>.<ext> answers with
# the file (Upload#short_url and .short_path,
# https://github.com/discourse/discourse/blob/main/app/models/upload.rb).
_UPLOAD = re.compile(r"upload://([A-Za-z0-9]+(?:\.\w+)?)")


def readable_raw(raw: str, site: str) -> str:
    """A post's ``raw`` as a link elsewhere must read it: each ``upload://`` short URL of a file
    as the site's ``/uploads/short-url/`` link (``site``: the Forum's base URL)."""
    base = site.rstrip("/")
    return _UPLOAD.sub(lambda m: f"{base}/uploads/short-url/{m[1]}", raw) if base else raw


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _pick(source: Mapping[str, Any], **fields: str) -> dict[str, str]:
    # Only scalars: a list or an object where a field belongs is left out, not stringified.
    return {
        name: str(source[key])
        for name, key in fields.items()
        if source.get(key) is not None and not isinstance(source[key], (dict, list))
    }
