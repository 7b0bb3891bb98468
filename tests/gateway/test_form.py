"""The public application form: R-APP-1 fields, CSRF, honeypot, rate limit, limits, errors."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from rules import default_charter
from tests.gateway.conftest import gateway_settings, inbox_rows

LIMITS = default_charter().application


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def fill(client, **fields) -> dict[str, str]:
    page = client.get("/apply").text
    return {"submission": hidden(page, "submission"), "csrf": hidden(page, "csrf"),
            "discourse_username": "", "discord_username": "", "why": "", "experience": "",
            "nominator": "", "email": "", "website": "", **fields}


GOOD = dict(discourse_username="quill_ash", why="I help newcomers every week.",
            experience="Moderation on two forums; event organising.")


def test_form_has_labelled_fields_and_no_side_effect_on_get(client, ledger):
    page = client.get("/apply")
    assert page.status_code == 200 and "cf_csrf" in page.headers["set-cookie"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for name in ("discourse_username", "discord_username", "why", "experience", "nominator", "email"):
        assert f'<label for="{name}">' in page.text and f'id="{name}"' in page.text
    assert 'name="viewport"' in page.text and f'maxlength="{LIMITS.max_answer_chars}"' in page.text
    assert inbox_rows(ledger) == []


def test_a_valid_application_is_stored_once_and_says_what_happens_next(client, ledger):
    data = fill(client, **GOOD, discord_username="@quill.ash", email="quill@example.org")
    done = client.post("/apply", data=data)
    assert done.status_code == 200
    assert "confirm the application from" in done.text and f"{LIMITS.confirm_within_days} days" in done.text
    assert "quill_ash" in done.text and "quill.ash" in done.text
    assert client.post("/apply", data=data).status_code == 200  # a double click
    rows = inbox_rows(ledger)
    assert len(rows) == 1 and rows[0].route == "intake" and rows[0].source == "form"
    assert rows[0].dedupe_key == f"form:{data['submission']}"
    assert rows[0].payload["data"]["discord_username"] == "quill.ash"


def test_errors_are_inline_and_keep_what_was_typed(client, ledger):
    data = fill(client, why="Because <b>community</b>", experience="x" * (LIMITS.max_answer_chars + 1),
                email="not-an-address")
    page = client.post("/apply", data=data)
    assert page.status_code == 422
    assert "Enter your Forum username, your Discord username, or both" in page.text
    assert "Please shorten this to" in page.text and "Enter an e-mail address" in page.text
    assert "Because &lt;b&gt;community&lt;/b&gt;" in page.text  # kept, escaped
    assert 'aria-invalid="true"' in page.text and 'role="alert"' in page.text
    assert inbox_rows(ledger) == []


def test_csrf_is_required(client, ledger):
    data = fill(client, **GOOD)
    assert client.post("/apply", data={**data, "csrf": "1.deadbeef"}).status_code == 403
    client.cookies.clear()
    refused = client.post("/apply", data=data)
    assert refused.status_code == 403 and "quill_ash" in refused.text  # kept for a resend
    assert inbox_rows(ledger) == []


def test_honeypot_pretends_success_and_stores_nothing(client, ledger):
    data = fill(client, **GOOD, website="http://spam.example")
    assert client.post("/apply", data=data).status_code == 200
    assert inbox_rows(ledger) == []


def test_rate_limit_per_ip(ledger):
    app = create_app(settings=gateway_settings(apply_rate_limit=3), ledger=ledger,
                     dispatcher=StoreOnlyDispatcher())
    with TestClient(app) as client:
        codes = [client.post("/apply", data=fill(client)).status_code for _ in range(4)]
    assert codes == [422, 422, 422, 429]


def test_wrong_content_type_and_oversize(client, ledger):
    assert client.post("/apply", content=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
    big = fill(client, **{**GOOD, "why": "y" * 70_000})
    assert client.post("/apply", data=big).status_code == 413
    assert inbox_rows(ledger) == []
