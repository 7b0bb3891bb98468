"""The application form in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, installed by scripts/test-deps.sh) driven by Selenium. Fill in, submit with
an error, correct it, submit, see the confirmation; a PNG of each state is kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.dispatch import StoreOnlyDispatcher
from tests.support.browser import By, Keys, WebDriverWait, chromium, replaced, seen
from tests.support.gateway import gateway_settings, inbox_rows
from tests.support.net import LoopbackServer


@pytest.fixture
def served(ledger):
    app = create_app(settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with LoopbackServer(app) as server:
        yield server.url


@pytest.fixture
def browser(tmp_path):
    # A phone-sized window.
    with chromium(tmp_path / "chromium-profile", size="412,915", page_load_timeout=30) as driver:
        yield driver


def test_fill_in_error_correct_confirm(served, browser, ledger, tmp_path):
    shots = []

    def wait_for(element_id: str):
        # A submit navigates: wait for the next page rather than racing its load.
        return WebDriverWait(browser, 15).until(seen.presence_of_element_located((By.ID, element_id)))

    def shot(name: str) -> None:
        path = tmp_path / f"apply-{len(shots) + 1}-{name}.png"
        browser.save_screenshot(str(path))
        shots.append(path)

    browser.get(f"{served}/apply")
    assert "Apply to join" in browser.title
    # Keyboard only: the first text field is reached with Tab and every field is labelled.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    labels = {label.get_attribute("for") for label in browser.find_elements(By.TAG_NAME, "label")}
    assert {"discourse_username", "discord_username", "why", "experience", "nominator", "email"} <= labels
    browser.find_element(By.ID, "why").send_keys("I welcome newcomers in the forum every week.")
    browser.find_element(By.ID, "experience").send_keys("Moderation, event organising.")
    shot("filled-without-username")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    summary = wait_for("error-summary")
    assert "Enter your Forum username, your Discord username, or both" in summary.text
    assert browser.find_element(By.ID, "why").get_attribute("value").startswith("I welcome newcomers")
    shot("error-shown")
    assert inbox_rows(ledger) == []

    # A username shorter than Discord allows: the page says so, and keeps what was typed.
    field = browser.find_element(By.ID, "discord_username")
    field.send_keys("b")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(replaced(summary))  # the next page, not this one
    summary = wait_for("error-summary")
    assert "A Discord username has at least 2 characters; 'b' has 1." in summary.text
    assert browser.find_element(By.ID, "discord_username").get_attribute("aria-invalid") == "true"
    shot("too-short")
    assert inbox_rows(ledger) == []

    field = browser.find_element(By.ID, "discord_username")
    field.clear()
    field.send_keys("birch.rowan")
    shot("corrected")
    field.send_keys(Keys.ENTER)  # submit from the keyboard

    heading = wait_for("done")
    assert "your application is received" in heading.text
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "birch.rowan" in body and "7 days" in body
    shot("confirmation")
    rows = inbox_rows(ledger)
    assert len(rows) == 1 and rows[0].route == "intake"

    # The application's own page, where every outcome will show (R-APP-4).
    browser.find_element(By.ID, "status-link").click()
    status = wait_for("status")
    assert status.get_attribute("data-state") == "received" and "is received" in status.text
    shot("status")

    assert all(p.stat().st_size > 1000 for p in shots)
    if os.environ.get("CHARTERFLOW_ARTIFACTS"):
        target = Path(os.environ["CHARTERFLOW_ARTIFACTS"]) / "gateway-browser"
        target.mkdir(parents=True, exist_ok=True)
        for path in shots:
            shutil.copy2(path, target / path.name)
