"""The public application form: R-APP-1 fields, CSRF, honeypot, rate limit, limits, errors."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from gateway.form import UsernameLookup
from rules import default_charter
from tests.support.gateway import gateway_settings, inbox_rows

LIMITS = default_charter().application


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def fill(client, **fields) -> dict[str, str]:
    page = client.get("/apply").text
    return {
        "submission": hidden(page, "submission"),
        "csrf": hidden(page, "csrf"),
        "discourse_username": "",
        "discord_username": "",
        "why": "",
        "experience": "",
        "nominator": "",
        "email": "",
        "website": "",
        **fields,
    }


GOOD = dict(
    discourse_username="quill_ash",
    why="I help newcomers every week.",
    experience="Moderation on two forums; event organising.",
)


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
    data = fill(
        client, why="Because <b>community</b>", experience="x" * (LIMITS.max_answer_chars + 1), email="not-an-address"
    )
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


def test_rate_limit_counts_accepted_applications_only(ledger):
    app = create_app(settings=gateway_settings(apply_rate_limit=3), ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with TestClient(app) as client:
        # Mistakes never lock a person out: ten invalid sends, all answered with the errors.
        assert [client.post("/apply", data=fill(client)).status_code for _ in range(10)] == [422] * 10
        accepted = [client.post("/apply", data=fill(client, **GOOD)).status_code for _ in range(4)]
    assert accepted == [200, 200, 200, 429]
    assert len(inbox_rows(ledger)) == 3


def test_usernames_shorter_than_the_platform_allows_say_so(client, ledger):
    page = client.post("/apply", data=fill(client, **{**GOOD, "discourse_username": "qa", "discord_username": "q"}))
    assert page.status_code == 422
    assert "A Forum username has at least 3 characters; &#39;qa&#39; has 2." in page.text
    assert "A Discord username has at least 2 characters; &#39;q&#39; has 1." in page.text
    long_discord = client.post("/apply", data=fill(client, **GOOD, discord_username="d" * 33))
    assert long_discord.status_code == 422
    assert "A Discord username has at most 32 characters." in long_discord.text
    ok = client.post("/apply", data=fill(client, **{**GOOD, "discourse_username": "qua", "discord_username": "qu"}))
    assert ok.status_code == 200
    assert len(inbox_rows(ledger)) == 1


def test_nul_bytes_are_refused_with_a_message_not_dropped(client, ledger):
    page = client.post("/apply", data=fill(client, **{**GOOD, "why": "I help\x00 newcomers."}))
    assert page.status_code == 422
    assert "This field contained a NUL character" in page.text
    assert "I help newcomers." in page.text and "\x00" not in page.text  # shown without it
    control = client.post("/apply", data=fill(client, **{**GOOD, "experience": "Moderation\x07."}))
    assert control.status_code == 422 and "invisible control characters" in control.text
    assert inbox_rows(ledger) == []


def test_the_same_form_sent_again_with_changes_keeps_the_first(client, ledger):
    data = fill(client, **GOOD)
    assert client.post("/apply", data=data).status_code == 200
    again = client.post("/apply", data={**data, "why": "Another reason, typed after going back."})
    assert again.status_code == 409
    assert "Your first application is kept" in again.text
    assert "why you want to join" in again.text and "How to change it" in again.text
    assert f"after {LIMITS.confirm_within_days} days" in again.text
    rows = inbox_rows(ledger)
    assert len(rows) == 1 and rows[0].payload["data"]["why"] == GOOD["why"]
    # Sent again unchanged (a reload): the usual page, still one application.
    assert client.post("/apply", data=data).status_code == 200
    assert len(inbox_rows(ledger)) == 1


def test_the_status_page_follows_the_submission(client, ledger):
    data = fill(client, **GOOD)
    done = client.post("/apply", data=data)
    link = re.search(r'id="status-link" href="([^"]+)"', done.text).group(1)
    assert link == f"/apply/status/{data['submission']}"
    status = client.get(link)
    assert status.status_code == 200 and 'data-state="received"' in status.text
    assert client.get("/apply/status/" + "x" * 30).status_code == 404
    assert client.get("/apply/status/bad!").status_code == 404
    metrics = client.get("/metrics").text  # labelled by route, never by the submission id
    assert 'route="/apply/status/{submission}",status="200"' in metrics
    assert data["submission"] not in metrics
    assert "by\n  e-mail" not in done.text  # no SMTP configured: no e-mail is promised


def test_outcome_e_mail_is_promised_only_when_e_mail_is_sent(ledger):
    for sending in (True, False):
        app = create_app(
            settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher(), email_outcomes=sending
        )
        with TestClient(app) as client:
            form = client.get("/apply").text
            done = client.post("/apply", data=fill(client, **GOOD, email="quill@example.org")).text
        assert ("you get each outcome by e-mail too" in form) is sending
        assert ("this site sends no\n    automatic e-mail" in form) is not sending
        assert (", by\n  e-mail" in done) is sending


def test_wrong_content_type_and_oversize(client, ledger):
    assert client.post("/apply", content=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
    big = fill(client, **{**GOOD, "why": "y" * 70_000})
    assert client.post("/apply", data=big).status_code == 413
    assert inbox_rows(ledger) == []


def test_unknown_usernames_are_answered_on_the_page_through_the_platforms(looked_up, ledger):
    # Looked up on the Forum and Discord sandboxes by the real connectors (R-APP-4).
    page = looked_up.post(
        "/apply",
        data=fill(looked_up, **{**GOOD, "discourse_username": "nobody_here", "discord_username": "nobody.either"}),
    )
    assert page.status_code == 422
    assert "There is no Forum account called &#39;nobody_here&#39;" in page.text
    assert "There is no Discord account called &#39;nobody.either&#39;" in page.text
    assert 'value="nobody_here"' in page.text and "I help newcomers every week." in page.text
    assert inbox_rows(ledger) == []
    ok = looked_up.post(
        "/apply", data=fill(looked_up, **{**GOOD, "discourse_username": "cleo_marsh", "discord_username": "cleo_marsh"})
    )
    assert ok.status_code == 200 and len(inbox_rows(ledger)) == 1


def test_a_platform_that_cannot_answer_does_not_lose_the_application(ledger):
    def broken() -> dict:
        raise ConnectionError("the platform is down")

    app = create_app(
        settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher(), lookup=UsernameLookup(broken)
    )
    with TestClient(app) as client:
        assert client.post("/apply", data=fill(client, **GOOD)).status_code == 200
    assert len(inbox_rows(ledger)) == 1  # the intake flow checks the account later
