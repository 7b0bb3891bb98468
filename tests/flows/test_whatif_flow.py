"""The `charter-what-if` flow on a real Prefect server."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.whatif import what_if


def _artifacts(flow_run_id):
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def test_what_if_flow_answers_and_publishes_an_artifact(prefect_server):
    case = {
        "case": "admins",
        "platforms": ["discourse", "discord"],
        "admins": {"discourse": ["ash", "birch"], "discord": ["ash"]},
    }
    state = what_if(case=case, return_state=True)
    assert state.is_completed()
    answer = state.result()
    assert answer["allowed"] is False
    assert [v["ruling"] for v in answer["violations"]] == ["R-ADMIN-2", "R-ADMIN-1"]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "what-if-admins"
    [artifact] = _artifacts(state.state_details.flow_run_id)
    assert artifact.key == "what-if-answer"
    assert "R-ADMIN-1 ash" in artifact.data and "| allowed | False |" in artifact.data


def test_malformed_case_fails_the_run_with_the_field_named(prefect_server):
    state = what_if(case={"case": "term", "now": "yesterday"}, return_state=True)
    assert state.is_failed()
    assert "malformed case: term_start: required field is missing; now: not an ISO 8601" in state.message
    with get_client(sync_client=True) as client:
        run_name = client.read_flow_run(state.state_details.flow_run_id).name
    assert run_name == "what-if-term"


def test_what_if_admins_shows_who_counts_and_who_does_not(prefect_server):
    case = {
        "case": "admins",
        "platforms": ["discourse", "discord"],
        "admins": {"discourse": ["ash", "system"], "discord": ["cedar", "dogwood"]},
        "members": ["ash", "cedar", "dogwood"],
        "platform_accounts": ["system"],
    }
    state = what_if(case=case, return_state=True)
    answer = state.result()
    assert answer["allowed"] is False and answer["violations"][0]["ruling"] == "R-ADMIN-2"
    [artifact] = _artifacts(state.state_details.flow_run_id)
    assert "| admins | Forum: 1 admin counts (ash); not counted: system (platform account) |" in artifact.data
    assert "| admins | Discord: 2 admins count (cedar, dogwood) |" in artifact.data
