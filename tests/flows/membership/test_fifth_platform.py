"""A fifth platform brought in as a plugin, with no change to ``flows/``: the throwaway Parlor
connector (``tests/plugins/parlor``) is written into a temporary folder, installed into this
venv with ``uv pip install``, found through the ``charterflow.connectors`` entry points, and an
application lives its whole membership lifecycle on Platforms that include it: named on Parlor
only, eligible by Parlor activity, a ballot shown on the three platforms with votes on Parlor
merged with Discord's, approved, and the WG group granted on Parlor. Uninstalled afterwards."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.registry import discover, load_connector
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.ballot import close_due_ballots
from flows.membership.intake import intake
from flows.membership.onboarding import onboard
from flows.platforms import Platforms, use
from ledger import platforms as ledger_platforms
from ledger import repo
from ledger.db import Ledger
from ledger.migrate import upgrade
from ledger.models import Application, ApplicationStatus, Ballot, BallotOutcome, Person, Platform
from rules import default_charter
from tests.support.membership import CONFIRM_SECRET, MEMBERS, NOW, press_vote
from tests.support.net import LoopbackServer

# Installing a package and a world of three sandboxes take longer than one ordinary test.
pytestmark = pytest.mark.timeout(900)
TEMPLATE = Path(__file__).resolve().parents[2] / "plugins" / "parlor"
DIST = "charterflow-parlor"


def _uv(*args: str) -> subprocess.CompletedProcess[str]:
    # The uv of the venv running the tests, acting on that venv.
    uv = Path(sys.executable).parent / "uv"
    return subprocess.run(
        [str(uv if uv.exists() else "uv"), "pip", *args, "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def parlor_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Parlor package, written to a temporary folder and installed; uninstalled after."""
    where = tmp_path_factory.mktemp("plugin") / "charterflow-parlor"
    shutil.copytree(TEMPLATE, where, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    done = _uv("install", "--offline", str(where))
    if done.returncode != 0:  # a fresh machine: the build backend comes from the index
        done = _uv("install", str(where))
    assert done.returncode == 0, done.stderr
    importlib.invalidate_caches()
    try:
        yield where
    finally:
        _uv("uninstall", DIST)
        importlib.invalidate_caches()


def parlor_seed() -> dict[str, Any]:
    """The WG's members on Parlor (in its ``working-group`` group), and the applicant."""
    old = (NOW - timedelta(days=500)).isoformat()
    users = [{"username": "parlor_host", "admin": True, "created_at": old, "posts": 900, "days_visited": 400}]
    users += [{"username": m, "created_at": old, "posts": 60, "days_visited": 100} for m in MEMBERS]
    users += [
        {
            "username": "nell_bracken",
            "created_at": (NOW - timedelta(days=400)).isoformat(),
            "posts": 25,
            "days_visited": 40,
            "last_seen_at": (NOW - timedelta(days=1)).isoformat(),
        },
        {
            "username": "otto_pell",
            "created_at": (NOW - timedelta(days=20)).isoformat(),
            "posts": 80,
            "days_visited": 19,
        },
    ]
    return {"users": users, "groups": {"working-group": list(MEMBERS)}}


@pytest.fixture
def parlor_world(world: Any, parlor_installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The membership ``world`` plus Parlor, built from the registry and its own settings."""
    cls = load_connector("parlor")
    sandbox = cls.sandbox(seed=parlor_seed())
    with LoopbackServer(sandbox.app) as server:
        for name, value in sandbox.client_info(server.url).items():
            monkeypatch.setenv(name, value)
        parlor = cls.from_env()
        connectors = {name: world.platforms.space(name).connector for name in world.platforms.names()}
        platforms = Platforms.build(
            charter=world.platforms.charter,
            confirm_secret=CONFIRM_SECRET,
            gateway_url=world.platforms.gateway_url,
            dsf_members=world.platforms.dsf_members,
            mailer=world.platforms.mailer,
            **connectors,
            parlor=parlor,
        )
        with world.ledger.transaction() as session:
            for handle, person_id in world.people.items():
                person = session.get(Person, person_id)
                user = parlor.find_user(handle)
                repo.add_identity(
                    session,
                    person,
                    platform="parlor",
                    actor="operator",
                    external_id=user.id,
                    username=user.username,
                    at=NOW - timedelta(days=100),
                )
                repo.set_desired_platform_role(
                    session,
                    person,
                    platform="parlor",
                    role="group:working-group",
                    desired=True,
                    actor="operator",
                    decision_ref="roster",
                    at=NOW - timedelta(days=100),
                )
        world.parlor_url, world.parlor_sb = server.url, sandbox
        with use(ledger=world.ledger, platforms=platforms):
            world.platforms = platforms
            yield world
        parlor.close()


def parlor_state(world: Any) -> dict[str, Any]:
    return httpx.get(f"{world.parlor_url}/_sandbox/state", timeout=10).json()


def test_the_plugin_is_discovered_and_served_by_configuration(parlor_installed, tmp_path, monkeypatch):
    info = {i.name: i for i in discover()}["parlor"]
    assert info.loaded, info.error
    assert set(info.capabilities) == {"directory", "role_manager", "messenger", "ballot_box"}
    sandbox = info.cls.sandbox()
    with LoopbackServer(sandbox.app) as server:
        for name, value in sandbox.client_info(server.url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("CHARTERFLOW_HOME", str(tmp_path))
        monkeypatch.setenv("CHARTERFLOW_PLATFORMS", "parlor")
        monkeypatch.setenv("CHARTERFLOW_MEMBERSHIP_PARLOR_CHANNEL", "wg-lounge")
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        upgrade(ledger)
        try:
            with use(ledger=ledger, platforms=Platforms.build(charter=default_charter())):
                _served_once_approved(ledger, monkeypatch)
        finally:
            ledger.dispose()


def _served_once_approved(ledger: Any, monkeypatch: Any) -> None:
    # R-PLATFORM: installed and configured, but not served before the Board approves a trial.
    platforms = Platforms.from_settings()
    try:
        assert platforms.names() == ()
    finally:
        platforms.close()
    charter = default_charter()
    with ledger.transaction() as session:
        ledger_platforms.record_state(
            session,
            platform="parlor",
            state="trial",
            actor="test",
            decided_by="board:slack",
            charter_platforms=charter.platforms,
            trial_ends_at=datetime.now(UTC) + timedelta(days=90),
        )
    platforms = Platforms.from_settings()
    try:
        assert platforms.names() == ("parlor",)
        space = platforms.space("parlor")
        assert space.wg_channel == "wg-lounge"  # the generic setting wins
        assert space.wg_role.name == "working-group"  # the connector's default
        assert space.directory.find_user("cleo_marsh").platform == "parlor"
    finally:
        platforms.close()
    # Unset: every registered community connector whose settings load (not the Board's Slack).
    monkeypatch.delenv("CHARTERFLOW_PLATFORMS")
    platforms = Platforms.from_settings()
    try:
        assert "parlor" in platforms.names() and "slack" not in platforms.names()
    finally:
        platforms.close()


def test_membership_lifecycle_on_a_fifth_platform(parlor_world):
    w = parlor_world
    assert w.platforms.names() == ("discourse", "discord", "parlor")
    applicant = w.platforms.space("parlor").directory.find_user("nell_bracken")
    result = intake(
        accounts={"parlor": "nell_bracken"},
        motivation="I host the Parlor newcomers' table.",
        experience="Two years of moderation on Parlor.",
        source="parlor",
        source_ref="test:nell_bracken",
        proven_accounts={"parlor": applicant.id},
        now=NOW,
    )
    app_id = result["application"]
    assert result["eligibility"]["status"] == "eligible", result["eligibility"]
    assert "parlor" in result["eligibility"]["reason"]  # R-ELIG-1 decided on Parlor's figures

    with w.ledger.read() as session:
        app = session.get(Application, app_id)
        assert app.status == ApplicationStatus.VOTING
        person = session.get(Person, app.person_id)
        assert {i.platform for i in person.identities} == {Platform("parlor")}
        assert app.eligibility[-1].evidence["platforms"]["parlor"]["post_count"] == 25
        ballot_id = app.ballot_id
        assert len(session.get(Ballot, ballot_id).electors) == len(MEMBERS)

    where = ballots.refs(context(NOW), ballot_id)
    assert set(where) == {"discourse", "discord", "parlor"}
    poll = next(p for p in parlor_state(w)["polls"] if p["id"] == where["parlor"]["ballot_id"])
    assert poll["group"] == "working-group" and poll["open"]

    # Two yes on Discord, two on Parlor (through Parlor's own API): 4 of 7 decides it.
    assert press_vote(w, where["discord"], "cleo_marsh", 0, now=NOW + timedelta(hours=1)) == f"ballot:{ballot_id}:vote"
    assert (
        press_vote(w, where["discord"], "dario_fenwick", 0, now=NOW + timedelta(hours=1)) == f"ballot:{ballot_id}:vote"
    )
    pballot = ballots.platform_ballot("parlor", where["parlor"])
    for voter in ("avery_quill", "bram_tolliver"):
        w.parlor_sb.cast_vote(w.parlor_url, pballot, voter=voter, option_index=0)
    # Someone outside the voters' group cannot vote on Parlor at all.
    with pytest.raises(httpx.HTTPStatusError):
        w.parlor_sb.cast_vote(w.parlor_url, pballot, voter="otto_pell", option_index=1)

    closed = close_due_ballots(now=NOW + timedelta(hours=2))
    assert closed[0]["outcome"] == "passed" and closed[0]["yes"] == 4
    with w.ledger.read() as session:
        ballot = session.get(Ballot, ballot_id)
        assert ballot.outcome == BallotOutcome.PASSED
        assert {v.source_platform for v in repo.ballot_votes_history(session, ballot)} == {"discord", "parlor"}
        assert session.get(Application, app_id).status == ApplicationStatus.APPROVED
    state = parlor_state(w)
    assert "nell_bracken" in state["groups"]["working-group"]  # the WG group granted on Parlor
    assert not next(p for p in state["polls"] if p["id"] == where["parlor"]["ballot_id"])["open"]

    # Everything again: nothing new is written on Parlor.
    writes = {k: n for k, n in state["requests"].items() if not k.startswith("GET")}
    close_due_ballots(now=NOW + timedelta(hours=3))

    onboard(application_id=app_id, now=NOW + timedelta(hours=3))
    again = parlor_state(w)["requests"]
    assert {k: n for k, n in again.items() if not k.startswith("GET")} == writes


def test_an_application_naming_other_platforms_is_checked_like_any(parlor_world):
    w = parlor_world
    ask = dict(motivation="I host the Parlor newcomers' table.", experience="Moderation.", now=NOW)
    # A platform the WG does not run on cannot confirm anything (R-APP-2).
    result = intake(accounts={"zulip": "nell_bracken"}, source="operator", source_ref="t:1", **ask)
    assert (result["outcome"], result["code"]) == ("refused", "zulip-not-served")
    # No such account on Parlor (R-APP-1), and an oversized name (the charter's limit).
    result = intake(accounts={"parlor": "nobody_here"}, source="operator", source_ref="t:2", **ask)
    assert (result["outcome"], result["code"]) == ("refused", "parlor-unknown-user")
    result = intake(accounts={"parlor": "n" * 500}, source="operator", source_ref="t:3", **ask)
    assert (result["outcome"], result["code"]) == ("refused", "too-long")
    # A proven account that is not the one named (R-APP-2).
    other = w.platforms.space("parlor").directory.find_user("otto_pell")
    result = intake(
        accounts={"parlor": "nell_bracken"},
        source="parlor",
        source_ref="t:4",
        proven_accounts={"parlor": other.id},
        **ask,
    )
    assert (result["outcome"], result["code"]) == ("refused", "not-own-account")
    # A Parlor account that already belongs to a member: already a member (R-APP-3).
    result = intake(accounts={"parlor": "cleo_marsh"}, source="operator", source_ref="t:5", **ask)
    assert (result["outcome"], result["code"]) == ("refused", "already-member")
    # The same intake again (a redelivery) answers the same, and posts nothing new.
    before = [m["id"] for m in parlor_state(w)["messages"]]
    again = intake(accounts={"parlor": "nobody_here"}, source="operator", source_ref="t:2", **ask)
    assert again["outcome"] == "refused" and again.get("repeat")
    assert [m["id"] for m in parlor_state(w)["messages"]] == before
