"""Discourse admin grants need a human: the ``roles-change`` run pauses with a typed input on the
real Prefect server; the test clicks the e-mailed link in the Forum sandbox and resumes the run
as an operator does in the UI."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_runs import resume_flow_run
from sqlalchemy import select

from connectors.base import Role
from flows import inbox
from flows.roles.change import roles_change
from ledger import repo
from ledger.models import AuditEntry
from tests.support.membership import NOW
from tests.support.roles import command, followups


@pytest.fixture(autouse=True)
def quick_poll(monkeypatch):
    """The paused run looks for its answer every second (the setting's default is 10)."""
    monkeypatch.setenv("CHARTERFLOW_ROLES_ADMIN_CONFIRM_POLL_SECONDS", "1")


def start(w, *, timeout: int) -> tuple[threading.Thread, dict[str, Any]]:
    """Run the change in a thread (it blocks while paused, as in a worker)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = roles_change(
                action="grant",
                role="admin",
                platform="discourse",
                person="gale_morrow",
                reason="a third Forum admin for the conference",
                actor=f"person:{w.people['cleo_marsh']}",
                now=NOW,
                confirm_timeout_seconds=timeout,
            )
        except BaseException as exc:  # noqa: BLE001 - shown by the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def paused_run(name: str, *, within: float = 90.0):
    """The flow run called ``name`` once it is paused."""
    deadline = time.monotonic() + within
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
            for run in runs:
                if run.state is not None and run.state.is_paused():
                    return run
            time.sleep(0.5)
    raise AssertionError(f"no paused run {name} within {within}s")


def admin_holders(w) -> set[str]:
    return {u.username for u in w.platforms.space("discourse").roles.list_holders(Role.admin())}


def confirmation(w) -> dict:
    with w.ledger.read() as session:
        rows = session.scalars(
            select(AuditEntry.payload_json).where(AuditEntry.action == "roles.admin-confirmation")
        ).all()
    (row,) = rows
    return json.loads(row)


def dms_to(w, username: str) -> list[str]:
    state = w.discord_state()
    channels = {c["id"] for c in state.get("channels", []) if c.get("type") == 1}
    return [m["content"] or "" for m in state["messages"] if m["channel_id"] in channels]


def test_the_run_pauses_and_only_the_observed_flag_counts(roles_world):
    w = roles_world
    thread, out = start(w, timeout=300)
    run = paused_run(f"roles-change-person-{w.people['gale_morrow']}")
    assert run.state.state_details.run_input_keyset  # a typed input waits in the UI
    assert "gale_morrow" not in admin_holders(w)
    pending = [p for p in w.discourse_state()["pending_admin_confirmations"]]
    assert len(pending) == 1
    # The operator opens the e-mailed link, then answers "yes" in the Prefect UI.
    gale = w.platforms.space("discourse").directory.find_user("gale_morrow")
    httpx.post(
        f"{w.discourse_url}/_sandbox/confirm_admin", json={"user_id": int(gale.id)}, timeout=10
    ).raise_for_status()
    resume_flow_run(run.id, run_input={"confirmed": True, "note": "opened at 10:02"})
    thread.join(120)
    assert not thread.is_alive() and "error" not in out, out
    result = out["result"]
    assert result["status"] == "applied", result
    assert "gale_morrow" in admin_holders(w)
    entry = confirmation(w)
    assert (entry["answer"], entry["outcome"]) == ("yes", "applied")
    assert entry["note"].startswith("sha256:")  # the note's text stays out of the audit log
    with w.ledger.read() as session:
        rows = repo.platform_roles_of(session, repo.get_person(session, "gale_morrow"))
        row = next(r for r in rows if r.platform.value == "discourse" and r.role == "admin")
        assert (row.desired, row.observed) == (True, True)
    # The proposer (cleo_marsh) is told privately.
    assert any("Admin grant applied: gale_morrow on discourse" in t for t in dms_to(w, "cleo_marsh"))


def test_a_yes_without_the_flag_or_a_timeout_is_not_applied(roles_world):
    w = roles_world
    thread, out = start(w, timeout=300)
    run = paused_run(f"roles-change-person-{w.people['gale_morrow']}")
    resume_flow_run(run.id, run_input={"confirmed": True})  # but nobody opened the link
    thread.join(120)
    assert out["result"]["status"] == "recorded"
    assert out["result"]["outcome"].startswith("not applied")
    assert confirmation(w)["outcome"] == "not-applied"
    assert "gale_morrow" not in admin_holders(w)
    assert any(
        "Admin grant NOT applied: gale_morrow on discourse" in t and "does not show the flag" in t
        for t in dms_to(w, "cleo_marsh")
    )


def test_a_timeout_records_not_applied(roles_world):
    w = roles_world
    thread, out = start(w, timeout=3)
    thread.join(180)
    assert not thread.is_alive() and "error" not in out, out
    assert out["result"]["status"] == "recorded"
    entry = confirmation(w)
    assert (entry["answer"], entry["outcome"]) == ("timeout", "not-applied")
    with w.ledger.read() as session:
        rows = repo.platform_roles_of(session, repo.get_person(session, "gale_morrow"))
        row = next(r for r in rows if r.platform.value == "discourse" and r.role == "admin")
        assert (row.desired, row.observed) == (True, False)  # the decision stays; not applied
    assert any("Admin grant NOT applied" in t and "nobody answered" in t for t in dms_to(w, "cleo_marsh"))


def test_a_role_command_for_a_forum_admin_pauses_and_tells_the_member(roles_world, gateway):
    w = roles_world
    event = command(
        w,
        gateway,
        user="cleo_marsh",
        action="grant",
        role="admin",
        platform="discourse",
        person="gale_morrow",
        reason="conference cover",
    )
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(result=inbox.handle_event(w.ledger, event)), daemon=True)
    thread.start()
    run = paused_run(f"roles-change-person-{w.people['gale_morrow']}")
    # While paused the member already knows what is happening and who must act.
    assert any("Admin grant awaiting confirmation: gale_morrow on discourse" in t for t in followups(w))
    gale = w.platforms.space("discourse").directory.find_user("gale_morrow")
    httpx.post(
        f"{w.discourse_url}/_sandbox/confirm_admin", json={"user_id": int(gale.id)}, timeout=10
    ).raise_for_status()
    resume_flow_run(run.id, run_input={"confirmed": True})
    thread.join(120)
    assert out["result"] == "roles-change:applied"
    assert "gale_morrow" in admin_holders(w)
    answers = followups(w)
    assert any("Admin grant applied: gale_morrow on discourse" in t for t in answers)
    assert any(t.startswith("Done (grant admin on discourse to gale_morrow)") for t in answers)
