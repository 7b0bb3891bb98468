"""The confirmation (R-APP-2) and opt-in (R-TERM-2) pages, through HTTP: a GET shows the link and
a button and consumes nothing; the button's POST (CSRF-checked) stores one inbox event routed to
``confirm`` / ``renewal-opt-in``; bad, expired, tampered or foreign tokens get a clear 400 page
and no side effect. The flows' side of these events is tested in tests/flows/membership."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from flows.inbox import Route, RoutingConfig, route_for
from flows.membership.tokens import make_token
from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from ledger import repo
from ledger.models import Application, ApplicationStatus, Identity
from tests.support.browser import By, Keys, WebDriverWait, chromium, seen
from tests.support.gateway import gateway_settings, inbox_rows
from tests.support.net import LoopbackServer

SECRET = "links-secret-invented-for-tests"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def seeded(ledger) -> dict[str, int]:
    """An open application naming two accounts, and an active member in their first term."""
    with ledger.transaction() as s:
        applicant = repo.create_person(s, handle="tamsin_reed", actor="test")
        forum = repo.add_identity(
            s, applicant, platform="discourse", actor="test", external_id="71", username="tamsin_reed"
        )
        chat = repo.add_identity(
            s, applicant, platform="discord", actor="test", external_id="9071", username="tamsin.reed"
        )
        app = repo.submit_application(
            s, applicant, actor="test", source_platform="form", motivation="To help.", experience="Moderation."
        )
        repo.effect_record(
            s,
            key=f"application:{app.id}:identities",
            platform="ledger",
            actor="test",
            ref={"identities": [forum.id, chat.id]},
        )
        member = repo.create_person(s, handle="otto_brisk", actor="test")
        elsewhere = repo.add_identity(
            s, member, platform="discourse", actor="test", external_id="72", username="otto_brisk"
        )
        start = NOW - timedelta(days=340)
        membership = repo.start_membership(
            s, member, actor="test", starts_at=start, ends_at=start + timedelta(days=365)
        )
        return {
            "application": app.id,
            "forum": forum.id,
            "discord": chat.id,
            "member": member.id,
            "term": membership.terms[0].id,
            "not_named": elsewhere.id,
        }


@pytest.fixture
def site(ledger) -> Iterator[TestClient]:
    app = create_app(
        settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher(), confirm_secret=SECRET
    )
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def confirm_token(seeded, *, identity: str = "forum", secret: str = SECRET, days: int = 7, channel: str = "web") -> str:
    return make_token(
        secret=secret,
        purpose="confirm",
        subject=seeded["application"],
        identity=seeded[identity],
        expires_at=NOW + timedelta(days=days),
        channel=channel,
    )


def optin_token(seeded, *, secret: str = SECRET, days: int = 30) -> str:
    return make_token(
        secret=secret,
        purpose="optin",
        subject=seeded["term"],
        identity=seeded["member"],
        expires_at=NOW + timedelta(days=days),
        channel="web",
    )


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_get_shows_the_account_and_a_button_that_posts_and_stores_nothing(site, ledger, seeded):
    token = confirm_token(seeded)
    page = site.get(f"/confirm/{token}")
    assert page.status_code == 200 and inbox_rows(ledger) == []
    assert "Confirm your application" in page.text and "tamsin_reed" in page.text
    assert "Forum" in page.text and f"application {seeded['application']}" in page.text
    assert f'<form method="post" action="/confirm/{token}"' in page.text
    assert '<button type="submit"' in page.text and "<script" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    cookie = page.headers["set-cookie"]
    assert "cf_csrf=" in cookie and "Path=/confirm" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    # Opening it again (a link preview, a mail scanner) still stores nothing.
    assert site.get(f"/confirm/{token}").status_code == 200 and inbox_rows(ledger) == []


def test_the_button_stores_one_confirm_event_and_says_what_happens_next(site, ledger, seeded):
    token = confirm_token(seeded)
    csrf = csrf_of(site.get(f"/confirm/{token}").text)
    done = site.post(f"/confirm/{token}", data={"csrf": csrf})
    assert done.status_code == 200
    assert "your confirmation is received" in done.text and "What happens next" in done.text
    assert "each</strong> account" in done.text
    again = site.post(f"/confirm/{token}", data={"csrf": csrf})  # a double click
    assert again.status_code == 200
    rows = inbox_rows(ledger)
    assert len(rows) == 1
    row = rows[0]
    assert (row.source, row.kind, row.route) == ("form", "confirm", Route.CONFIRM)
    assert row.payload["data"]["token"] == token and token not in row.dedupe_key
    assert row.dedupe_key.startswith("form:confirm:")
    # The other account's link is another event.
    other = confirm_token(seeded, identity="discord")
    site.post(f"/confirm/{other}", data={"csrf": csrf_of(site.get(f"/confirm/{other}").text)})
    assert len(inbox_rows(ledger)) == 2


def test_a_post_without_a_valid_csrf_token_stores_nothing_and_offers_the_button_again(site, ledger, seeded):
    token = confirm_token(seeded)
    site.get(f"/confirm/{token}")
    refused = site.post(f"/confirm/{token}", data={"csrf": "0.bad"})
    assert refused.status_code == 403 and "Please press the button again" in refused.text
    assert 'role="alert"' in refused.text and csrf_of(refused.text)
    # A token issued for another link does not carry over.
    other = confirm_token(seeded, identity="discord")
    assert site.post(f"/confirm/{token}", data={"csrf": csrf_of(site.get(f"/confirm/{other}").text)}).status_code == 403
    # No cookie at all (a cross-site form post).
    bare = TestClient(site.app, base_url="http://testserver")
    assert bare.post(f"/confirm/{token}", data={"csrf": csrf_of(refused.text)}).status_code == 403
    assert inbox_rows(ledger) == []


def _bad_tokens(seeded) -> dict[str, str]:
    good = confirm_token(seeded)
    head, mac = good.rsplit(".", 1)
    return {
        "garbage": "not-a-token",
        "tampered-subject": re.sub(r"^c\.w\.\d+\.", "c.w.999.", good),
        "tampered-mac": f"{head}.{'0' * 32}",
        "expired": confirm_token(seeded, days=-1),
        "other-secret": confirm_token(seeded, secret="another-secret"),
        "wrong-purpose": optin_token(seeded),
        "unknown-application": make_token(
            secret=SECRET,
            purpose="confirm",
            subject=4242,
            identity=seeded["forum"],
            expires_at=NOW + timedelta(days=7),
            channel="web",
        ),
        "identity-not-named": make_token(
            secret=SECRET,
            purpose="confirm",
            subject=seeded["application"],
            identity=seeded["not_named"],
            expires_at=NOW + timedelta(days=7),
            channel="web",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "garbage",
        "tampered-subject",
        "tampered-mac",
        "expired",
        "other-secret",
        "wrong-purpose",
        "unknown-application",
        "identity-not-named",
    ],
)
def test_bad_tokens_get_a_clear_400_page_and_no_side_effect(site, ledger, seeded, case):
    token = _bad_tokens(seeded)[case]
    shown = site.get(f"/confirm/{token}")
    assert shown.status_code == 400 and "This link cannot be used" in shown.text
    assert "<form" not in shown.text
    # Even with a CSRF token that is valid for it, the POST stores nothing.
    csrf = csrf_of(site.get(f"/confirm/{confirm_token(seeded)}").text)
    assert site.post(f"/confirm/{token}", data={"csrf": csrf}).status_code == 400
    assert inbox_rows(ledger) == []


def test_a_closed_or_already_confirmed_application_shows_no_button(site, ledger, seeded):
    token = confirm_token(seeded)
    with ledger.transaction() as s:
        app = s.get(Application, seeded["application"])
        repo.confirm_application(s, app, s.get(Identity, seeded["forum"]), actor="test")
    done = site.get(f"/confirm/{token}")
    assert done.status_code == 200 and "already confirmed" in done.text and "<form" not in done.text
    with ledger.transaction() as s:
        repo.set_application_status(
            s, s.get(Application, seeded["application"]), ApplicationStatus.EXPIRED, actor="test"
        )
    gone = site.get(f"/confirm/{token}")
    assert gone.status_code == 410 and "expired" in gone.text and "apply again" in gone.text
    assert site.post(f"/confirm/{token}", data={"csrf": "x"}).status_code == 410
    assert inbox_rows(ledger) == []


def test_opt_in_page_and_button(site, ledger, seeded):
    token = optin_token(seeded)
    page = site.get(f"/optin/{token}")
    assert page.status_code == 200 and "Opt in for another year" in page.text and inbox_rows(ledger) == []
    end = (NOW - timedelta(days=340) + timedelta(days=365)).date().isoformat()
    assert end in page.text and "Path=/optin" in page.headers["set-cookie"]
    done = site.post(f"/optin/{token}", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "your opt-in is received" in done.text
    rows = inbox_rows(ledger)
    assert len(rows) == 1 and (rows[0].kind, rows[0].route) == ("optin", Route.OPT_IN)
    assert rows[0].payload["data"]["token"] == token
    # A confirmation token is not an opt-in token; neither is a tampered one.
    assert site.get(f"/optin/{confirm_token(seeded)}").status_code == 400
    tampered = token[:-1] + ("1" if token.endswith("0") else "0")  # a different last digit
    assert site.get(f"/optin/{tampered}").status_code == 400
    assert len(inbox_rows(ledger)) == 1


def test_routing_table_sends_the_pages_events_to_their_flows():
    config = RoutingConfig()
    assert route_for(source="form", kind="confirm", attributes={}, config=config) == Route.CONFIRM
    assert route_for(source="form", kind="optin", attributes={}, config=config) == Route.OPT_IN
    assert route_for(source="form", kind="application", attributes={}, config=config) == Route.INTAKE
    assert route_for(source="form", kind="other", attributes={}, config=config) == Route.UNKNOWN


def test_link_pages_are_labelled_without_their_token_in_metrics(site, seeded):
    token = confirm_token(seeded)
    site.get(f"/confirm/{token}")
    text = site.get("/metrics").text
    assert 'route="/confirm/{token}"' in text and token not in text


def test_confirm_page_in_a_real_browser(ledger, seeded, tmp_path):
    """Headless Chromium (as tests/gateway/test_browser.py): open the link, reach the button with
    the keyboard, press it, read what happens next; one event stored."""
    app = create_app(
        settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher(), confirm_secret=SECRET
    )
    token = confirm_token(seeded)
    with (
        LoopbackServer(app) as server,
        chromium(tmp_path / "chromium-profile", size="412,915", page_load_timeout=30) as browser,
    ):
        browser.get(f"{server.url}/confirm/{token}")
        assert "Confirm your application" in browser.title
        assert "tamsin_reed" in browser.find_element(By.TAG_NAME, "main").text
        assert inbox_rows(ledger) == []
        button = browser.find_element(By.ID, "submit")
        assert button.text == "Confirm my application"
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert browser.switch_to.active_element == button  # the only control, first in tab order
        button.send_keys(Keys.ENTER)
        heading = WebDriverWait(browser, 15).until(seen.presence_of_element_located((By.ID, "done")))
        assert "your confirmation is received" in heading.text
        assert "What happens next" in browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(tmp_path / "confirm-done.png"))
    rows = inbox_rows(ledger)
    assert len(rows) == 1 and rows[0].route == Route.CONFIRM
    assert (tmp_path / "confirm-done.png").stat().st_size > 1000


def test_a_discord_button_token_is_refused_on_the_web_page_naming_the_button(site, ledger, seeded):
    token = confirm_token(seeded, identity="discord", channel="discord")
    shown = site.get(f"/confirm/{token}")
    assert shown.status_code == 400 and "button in the Discord direct message" in shown.text
    assert "<form" not in shown.text
    csrf = csrf_of(site.get(f"/confirm/{confirm_token(seeded)}").text)
    assert site.post(f"/confirm/{token}", data={"csrf": csrf}).status_code == 400
    assert inbox_rows(ledger) == []


@pytest.mark.parametrize("suffix", [".", "%20", "%0A", ").", "%22", "%20%20.%20"])
def test_a_link_copied_with_trailing_punctuation_is_normalised_before_the_duplicate_check(site, ledger, seeded, suffix):
    token = confirm_token(seeded)
    csrf = csrf_of(site.get(f"/confirm/{token}{suffix}").text)
    assert site.post(f"/confirm/{token}{suffix}", data={"csrf": csrf}).status_code == 200
    again = site.post(f"/confirm/{token}", data={"csrf": csrf})
    assert again.status_code == 200
    rows = inbox_rows(ledger)
    assert len(rows) == 1, "the same token pasted two ways is one press"
    assert rows[0].payload["data"]["token"] == token


@pytest.mark.parametrize("suffix", ["x", "0", ".abc", "%20x", "-"])
def test_a_token_with_other_extra_characters_is_refused(site, ledger, seeded, suffix):
    token = confirm_token(seeded)
    shown = site.get(f"/confirm/{token}{suffix}")
    assert shown.status_code == 400 and "This link cannot be used" in shown.text
    csrf = csrf_of(site.get(f"/confirm/{token}").text)
    assert site.post(f"/confirm/{token}{suffix}", data={"csrf": csrf}).status_code in (400, 403)
    assert inbox_rows(ledger) == []
