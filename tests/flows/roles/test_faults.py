"""Platform faults during role changes: a partial failure is recorded exactly and repaired by
the next run; Discord 50013 and Discourse's 404 on admin routes reach the operator as
instructions to fix the platform."""

from __future__ import annotations

import json

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.base import Role
from connectors.errors import FatalError
from flows.platforms import Platforms, use
from flows.roles.change import roles_change
from ledger import repo
from ledger.models import AuditEntry
from tests.support.membership import NOW
from tests.support.roles import holders, want

runner = CliRunner()


def observed(w, handle: str) -> dict[tuple[str, str], bool | None]:
    with w.ledger.read() as session:
        rows = repo.platform_roles_of(session, repo.get_person(session, handle))
        return {(r.platform.value, r.role): r.observed for r in rows}


def audit_payloads(w, action: str) -> list[dict]:
    with w.ledger.read() as session:
        rows = session.scalars(
            select(AuditEntry.payload_json).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        ).all()
    return [json.loads(r) for r in rows]


def role_writes(w) -> int:
    return sum(v for k, v in w.writes().items() if "/roles/" in k or "moderation" in k)


def test_partial_failure_is_recorded_exactly_and_the_rerun_sends_only_the_rest(roles_world, cli):
    w = roles_world
    want(w, "felix_oakes", "discord", "moderator")
    want(w, "felix_oakes", "discourse", "moderator")
    # The Forum refuses every write (reads still work): Discord is applied, the Forum is not.
    httpx.post(
        f"{w.discourse_url}/_sandbox/faults",
        json={"error_rate": 1.0, "error_status": 503, "methods": ["PUT", "DELETE"]},
        timeout=10,
    ).raise_for_status()
    result = runner.invoke(cli, ["roles", "apply", "--confirm"])
    assert result.exit_code == 1, result.output
    assert any(line.startswith("applied grant:discord:felix_oakes:moderator:") for line in result.output.splitlines())
    assert any(line.startswith("FAILED grant:discourse:felix_oakes:moderator:") for line in result.output.splitlines())
    assert holders(w, "discord", Role.moderator()) == {"felix_oakes"}
    assert "felix_oakes" not in holders(w, "discourse", Role.moderator())
    seen = observed(w, "felix_oakes")
    assert seen[("discord", "moderator")] is True and seen[("discourse", "moderator")] is False
    (failed,) = audit_payloads(w, "roles.apply-failed")
    pid = w.people["felix_oakes"]
    assert failed["applied"] == [f"grant:discord:person:{pid}:moderator"]
    assert failed["failed"] == [f"grant:discourse:person:{pid}:moderator"]
    assert "felix_oakes" not in json.dumps(failed)  # ids in the audit log, not handles

    httpx.post(f"{w.discourse_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    before = role_writes(w)
    again = runner.invoke(cli, ["roles", "apply", "--confirm"])
    assert again.exit_code == 0, again.output
    assert "discord: 0 change(s)" in again.output and "discourse: 1 change(s)" in again.output
    assert role_writes(w) - before == 1
    assert "felix_oakes" in holders(w, "discourse", Role.moderator())


def test_discord_50013_reaches_the_operator_as_an_instruction(roles_world, cli):
    w = roles_world
    # ``owners`` sits above the bot's own role: Discord refuses with 50013.
    want(w, "gale_morrow", "discord", "group:owners")
    result = runner.invoke(cli, ["roles", "apply", "--confirm"])
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if x.startswith("FAILED"))
    assert "50013" in line and "drag 'charterflow' above 'owners'" in line
    assert "Server Settings → Roles" in line

    state = roles_change(
        action="grant",
        role="group:owners",
        platform="discord",
        person="hana_pike",
        reason="server owner team",
        now=NOW,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(FatalError, match="drag 'charterflow' above 'owners'"):
        state.result()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    note = next(a.data for a in found if "platform error" in (a.data or ""))
    assert "drag 'charterflow' above 'owners'" in note and "only the missing part" in note
    (entry,) = audit_payloads(w, "roles.change-failed")
    assert entry["failed"] == ["grant:discord:group:owners"] and entry["applied"] == []


def test_discourse_404_on_admin_routes_reaches_the_operator_as_an_instruction(roles_world, cli):
    w = roles_world
    # An API key of a user who is not an admin: Discourse answers 404 on every admin route.
    forum = w.discourse_sb.connect(w.discourse_url, api_username="felix_oakes")
    platforms = Platforms.build(
        charter=w.platforms.charter,
        discourse=forum,
        discord=w.platforms.space("discord").connector,
        confirm_secret="test-only-secret",
    )
    try:
        with use(ledger=w.ledger, platforms=platforms):
            result = runner.invoke(cli, ["roles", "plan"])
    finally:
        forum.close()
    assert result.exit_code == 2
    assert "HTTP 404" in result.output
    assert "Set CHARTERFLOW_DISCOURSE_API_USERNAME to an admin account" in result.output
