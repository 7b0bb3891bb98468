"""The seeded community, the ledger seeding of `up`, the sandboxes process and the inspector,
without Prefect: the real sandboxes process on free ports, read and driven over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date

import httpx
import pytest

from charterflow.seed import CATEGORIES, build
from charterflow.settings import Settings
from charterflow.up import sandbox_env, sandbox_spec, seed_ledger
from ledger import audit, repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import Identity, WgRole
from ledger.roster import stored_list
from rules import check_admins, default_charter
from tests.support.net import free_port

TODAY = date(2026, 11, 24)


def test_the_community_is_deterministic_and_keeps_the_charter():
    community = build(today=TODAY)
    again = build(today=TODAY)
    assert [p.handle for p in community.people] == [p.handle for p in again.people]
    assert community.discord_seed() == again.discord_seed()
    assert len(community.people) == 200
    assert len({p.handle for p in community.people}) == 200
    # Seven members, each with a home platform; Chair and Co-Chair from different platforms.
    assert len(community.wg) == 7 and all(p.home_platform for p in community.wg)
    roles = community.wg_roles
    assert community.person(roles["chair"]).home_platform != community.person(roles["co_chair"]).home_platform
    # R-ADMIN-1/2 with the charter's own check.
    admins = {platform: [p.handle for p in community.admins(platform)] for platform in ("discourse", "discord")}
    # R-ADMIN-2 counts WG members only.
    decision = check_admins(admins, members=[p.handle for p in community.wg], charter=default_charter())
    assert decision.allowed, decision.reason
    assert community.moderators("discourse") and community.moderators("discord")
    # Activity histories on both platforms; the demo's applicants are eligible on Discord.
    forum = [p.forum for p in community.people if p.forum]
    assert len(forum) > 150 and any(f["likes_received"] for f in forum)
    assert {f["trust_level"] for f in forum} >= {0, 1, 2, 3}
    assert len(community.applicants()) >= 5
    assert all(a.discord["recent_messages"] >= 5 for a in community.applicants())
    assert len(community.ideas) == 3 and len(community.board) == 5


def test_the_roster_imports_once_and_matches_the_sandboxes(tmp_path):
    settings = Settings(home=tmp_path, _env_file=None)
    ledger = Ledger(settings.ledger_url())
    upgrade(ledger)
    first = seed_ledger(settings)
    with ledger.read() as session:
        entries = audit.count(session)
    assert "people imported" in first
    assert seed_ledger(settings) == "already seeded"
    community = build()
    with ledger.read() as session:
        assert audit.count(session) == entries, "a second `up` writes nothing"
        current = repo.current_wg_roles(session)
        assert repo.get_person(session, community.wg_roles["chair"]).id == current[WgRole.CHAIR].person_id
        discord_users = {u["id"]: u["username"] for u in community.discord_seed()["members"]}
        for person in community.wg:
            identity = repo.find_identity(session, platform="discord", username=person.discord["username"])
            assert isinstance(identity, Identity)
            assert discord_users[identity.external_id] == person.discord["username"]
        assert set(stored_list(session, "board_members")) == {p.handle for p in community.board}
    ledger.dispose()


@pytest.fixture
def sandboxes(tmp_path):
    """The sandboxes process as `up` starts it, with a gateway URL nobody listens on."""
    settings = Settings(home=tmp_path, inspector_port=free_port(), _env_file=None)
    spec = sandbox_spec(
        settings,
        ["discord", "discourse", "slack"],
        gateway_url=f"http://127.0.0.1:{free_port()}",
        prefect_ui="http://127.0.0.1:1",
    )
    env = {**os.environ, **sandbox_env(spec), "CHARTERFLOW_SANDBOX_SPEC": json.dumps(spec)}
    process = subprocess.Popen(
        [sys.executable, "-m", "charterflow.inspector"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{spec['inspector_port']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.2)
    urls = {name: f"http://127.0.0.1:{spec['platforms'][name]['port']}" for name in spec["platforms"]}
    yield base, urls, spec
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert "Traceback" not in process.stdout.read()


def test_the_sandboxes_are_seeded_and_the_inspector_shows_them(sandboxes):
    base, urls, spec = sandboxes
    forum = httpx.get(f"{urls['discourse']}/_sandbox/state", timeout=10).json()
    ideas = [t for t in forum["topics"] if t["category_id"] == CATEGORIES["Ideas"]]
    assert len(ideas) == 3
    assert forum["webhook"]["url"] == f"{spec['gateway_url']}/hooks/discourse"
    assert not forum["webhook_deliveries"], "the seeded ideas are history, not new events"
    discord = httpx.get(f"{urls['discord']}/_sandbox/state", timeout=10).json()
    assert discord["member_count"] > 150
    assert "propose" in discord["commands"][next(iter(discord["commands"]))]
    # Secrets stay out of the state the inspector reads.
    text = json.dumps(discord) + json.dumps(forum)
    assert spec["platforms"]["discord"]["token"] not in text
    assert spec["platforms"]["slack"]["bot_token"] not in httpx.get(f"{urls['slack']}/_sandbox/state").text

    home = httpx.get(base + "/", timeout=10)
    chair = build().wg_roles["chair"]
    assert home.status_code == 200 and chair in home.text
    page = httpx.get(f"{base}/forum", params={"topic": ideas[0]["id"]}, timeout=10)
    assert ideas[0]["title"] in page.text
    assert "wg-private" in httpx.get(f"{base}/discord", timeout=10).text
    assert "dsf-board" in httpx.get(f"{base}/slack", timeout=10).text


def test_inspector_actions_are_same_origin_posts(sandboxes):
    base, urls, spec = sandboxes
    form = {
        "user": build().wg[0].discord["username"],
        "name": "idea",
        "options": "text=A FAQ channel",
        "channel_id": "",
    }
    # A form posted from another site is refused and nothing is sent.
    refused = httpx.post(
        f"{base}/act/discord/command", data=form, timeout=10, headers={"Origin": "http://elsewhere.example"}
    )
    assert refused.status_code == 403
    assert httpx.post(f"{base}/act/discord/command", data=form, timeout=10).status_code == 403
    state = httpx.get(f"{urls['discord']}/_sandbox/state", timeout=10).json()
    assert state["interactions"] == []
    # From the inspector's own page it is sent (signed) to the gateway; nobody listens there.
    sent = httpx.post(f"{base}/act/discord/command", data=form, timeout=20, headers={"Origin": base})
    assert sent.status_code == 303 and "note=" in sent.headers["location"]
    state = httpx.get(f"{urls['discord']}/_sandbox/state", timeout=10).json()
    assert len(state["interactions"]) == 1 and state["interactions"][0]["failed"]
    # Pages change nothing.
    httpx.get(f"{base}/discord", timeout=10)
    assert len(httpx.get(f"{urls['discord']}/_sandbox/state", timeout=10).json()["interactions"]) == 1
