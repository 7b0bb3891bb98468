"""The sandbox inspector and the Prefect UI in a real browser (headless Chromium from the system
packages, driven by Selenium) against a running `charterflow up`: a WG member presses Yes on a
ballot in the inspector, the vote lands in the ledger, and the screenshots the README shows are
taken (inspector.png, prefect-ui.png; 1280x800): into docs/screenshots/ with
``CHARTERFLOW_UPDATE_SCREENSHOTS=1``, else into the test's temporary directory, so that a test
run leaves the working tree as it was."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from charterflow.inspector.app import create_app
from charterflow.inspector.serve import Running
from charterflow.seed import build
from ledger import repo
from ledger import safety as queue_ledger
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import Proposal, Vote
from ledger.types import utcnow
from tests.support.browser import By, WebDriverWait, chromium, seen
from tests.support.net import LoopbackServer
from tests.test_up import running_up

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


@pytest.fixture
def browser(tmp_path):
    with chromium(
        tmp_path / "chromium-profile",
        size="1280,800",
        page_load_timeout=60,
        extra=("--hide-scrollbars",),
        skip_outside_ci=True,
    ) as driver:
        # The screenshots' size, whatever room the headless window keeps for itself.
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver


@pytest.fixture
def stack(tmp_path):
    """`charterflow up` on free ports; stopped with Ctrl-C, nothing left behind."""
    with running_up(tmp_path) as (lock, _):
        yield lock


def _wait(probe, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.mark.slow
def test_press_a_ballot_button_in_the_inspector(stack, browser, tmp_path):
    shots = DOCS_SCREENSHOTS if os.environ.get("CHARTERFLOW_UPDATE_SCREENSHOTS") else tmp_path / "shots"

    community = build()
    chair = community.person(community.wg_roles["chair"])
    voter = community.wg[1]
    # The Chair proposes a platform trial on Discord: the WG's endorsement ballot opens.
    outcome = httpx.post(
        f"{stack['sandboxes']['discord']}/_sandbox/interactions",
        timeout=30,
        json={
            "type": "command",
            "user": chair.discord["username"],
            "name": "propose",
            "options": {
                "kind": "trial-platform",
                "title": "Trial a forum-to-chat bridge",
                "platform": "matrix",
                "summary": "Three months, to let Forum-only members join live events.",
            },
        },
    ).json()
    assert outcome["status"] == 200, outcome
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:

        def ballot_ref():
            with ledger.read() as session:
                proposal = session.scalars(select(Proposal)).first()
                if proposal is None or proposal.endorsement_ballot_id is None:
                    return None
                found = repo.effect_get(session, key=f"ballot:{proposal.endorsement_ballot_id}:post:discord")
                return (proposal.endorsement_ballot_id, found["ref"]) if found else None

        ballot_id, ref = _wait(ballot_ref) or (None, None)
        assert ballot_id, "the endorsement ballot was not posted on Discord"

        inspector = stack["inspector_url"]
        browser.get(f"{inspector}/discord?channel={ref['thread_id']}&as={voter.discord['username']}")
        assert "Discord" in browser.title
        yes = next(
            b
            for b in browser.find_elements(By.CSS_SELECTOR, "button[data-custom-id^='cfb:']")
            if b.text.strip().lower() == "yes"
        )
        yes.click()
        note = WebDriverWait(browser, 30).until(seen.presence_of_element_located((By.ID, "note")))
        assert "pressed the button" in note.text and "HTTP 200" in note.text, note.text

        def voted():
            with ledger.read() as session:
                person = repo.get_person(session, voter.handle)
                return session.scalars(
                    select(Vote).where(Vote.ballot_id == ballot_id, Vote.voter_person_id == person.id)
                ).first()

        vote = _wait(voted)
        assert vote is not None and vote.choice.value == "yes" and vote.source_platform == "discord"
        # The voter's private answer is shown too (the handler's follow-up).
        _wait(
            lambda: "recorded" in httpx.get(f"{stack['sandboxes']['discord']}/_sandbox/state", timeout=10).text,
            timeout=30,
        )
        shots.mkdir(parents=True, exist_ok=True)
        page = browser.current_url  # the same page, its note, and the private answer

        def answer_shown(driver) -> bool:
            driver.get(page)
            return "Your vote (yes) is recorded." in driver.page_source

        # Reloaded until shown: on a busy machine the page can come back before the answer.
        WebDriverWait(browser, 60, poll_frequency=2).until(answer_shown)
        browser.save_screenshot(str(shots / "inspector.png"))

        # The Prefect UI: every deployment the runner serves, with its schedule.
        browser.get(f"{stack['ui_url']}/deployments")
        WebDriverWait(browser, 60).until(lambda d: "membership-renewal" in d.page_source)
        time.sleep(2)  # the single-page app fills in schedules and tags after the list
        browser.save_screenshot(str(shots / "prefect-ui.png"))
    finally:
        ledger.dispose()
    for name in ("inspector.png", "prefect-ui.png"):
        shot = shots / name
        assert shot.exists() and 20_000 < shot.stat().st_size < 2_000_000


def _seed_reports(ledger) -> tuple[int, int]:
    """Two community reports in the ledger: one claimed by a moderator, one a Code of Conduct
    matter referred to the CoC WG (R-SAFE-1, R-SAFE-2). Returns their ids."""
    now = utcnow()
    with ledger.transaction() as session:
        claimed, _ = queue_ledger.create(
            session,
            source_key="browser:1",
            at=now,
            actor="test",
            fields={
                "via": "discord",
                "platform": "discord",
                "reporter_key": "discord:9001",
                "reporter_username": "cleo_marsh",
                "target_kind": "message",
                "target_username": "rowan_vale",
                "content": "an unkind remark about a newcomer",
            },
        )
        queue_ledger.claim(session, claimed.id, by="bram_tolliver", at=now, actor="test")
        coc, _ = queue_ledger.create(
            session,
            source_key="browser:2",
            at=now,
            actor="test",
            fields={
                "via": "form",
                "platform": "discourse",
                "reporter_key": "form:discourse:dario_fenwick",
                "reporter_username": "dario_fenwick (unverified)",
                "target_kind": "person",
                "target_username": "esme_voss",
                "reason": "a threat sent privately",
                "coc": True,
            },
        )
        queue_ledger.refer(session, coc.id, by="bram_tolliver", at=now, actor="test")
        return claimed.id, coc.id


def test_the_inspector_reports_page_lists_seeded_reports_without_names(browser, tmp_path):
    """R-SAFE-1, R-SAFE-2: the inspector's Reports page, in Chromium, lists each report of the
    ledger with its state; the CoC report shows only "referred to the CoC WG", and the page
    names no reporter and quotes nothing reported."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        upgrade(ledger)
        claimed, coc = _seed_reports(ledger)
        running = Running(urls={}, gateway_url="http://127.0.0.1:9", community=build(), ready=True)
        app = create_app(running=running, ledger_url=str(ledger.engine.url))
        with LoopbackServer(app) as server:
            browser.get(f"{server.url}/reports")
            WebDriverWait(browser, 30).until(seen.presence_of_element_located((By.ID, f"report{coc}")))
            assert "Reports" in browser.title
            row = browser.find_element(By.ID, f"report{claimed}").text
            coc_row = browser.find_element(By.ID, f"report{coc}").text
            page = browser.find_element(By.TAG_NAME, "body").text
    finally:
        ledger.dispose()
    assert "claimed" in row and "Discord" in row and "bram_tolliver" in row
    assert "referred to the CoC WG" in coc_row and "Forum" in coc_row
    assert "bram_tolliver" not in coc_row and "claimed" not in coc_row
    for private in ("cleo_marsh", "rowan_vale", "unkind remark", "dario_fenwick", "esme_voss", "threat"):
        assert private not in page, private
