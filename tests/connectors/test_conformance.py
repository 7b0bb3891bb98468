"""The conformance suite: every registered connector that loads, each capability it declares,
against its own sandbox served on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import (
    CAPABILITY_PROTOCOLS,
    Activity,
    Ballot,
    Capability,
    ChangeStatus,
    InboundEvent,
    Instanced,
    MessageRef,
    RoleChange,
    ScheduledEvent,
    UserRef,
)
from connectors.errors import FatalError, InvalidSignature
from connectors.registry import discover

LOADED = [info for info in discover() if info.loaded]
CASES = [
    pytest.param((info.name, Capability(cap)), id=f"{info.name}-{cap.value}")
    for info in LOADED
    for cap in Capability
]


def test_at_least_the_discourse_connector_is_conformance_tested():
    assert "discourse" in {info.name for info in LOADED}


@pytest.fixture
def running(request: pytest.FixtureRequest, serve: Any) -> Any:
    name, capability = request.param
    info = next(i for i in LOADED if i.name == name)
    if capability.value not in info.capabilities:
        pytest.skip(f"{name} does not declare {capability.value}")
    box = serve(info.cls.sandbox())
    connector = box.connect()
    yield box, connector, capability
    connector.close()


@pytest.mark.parametrize("running", CASES, indirect=True)
def test_capability(running: Any) -> None:
    box, connector, capability = running
    protocol = CAPABILITY_PROTOCOLS[capability]
    assert isinstance(connector, protocol), f"{type(connector).__name__} does not implement {protocol.__name__}"
    CHECKS[capability](box, connector)


# --------------------------------------------------------------------------------------------


def check_directory(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    user = connector.find_user(samples.username)
    assert isinstance(user, UserRef) and user.username == samples.username and user.id
    with pytest.raises(FatalError) as missing:
        connector.find_user(samples.missing_username)
    assert samples.missing_username in str(missing.value)
    activity = connector.activity(user)
    assert isinstance(activity, Activity) and activity.user.id == user.id
    assert activity.created_at.tzinfo is not None
    assert activity.last_seen_at is None or activity.last_seen_at >= activity.created_at
    staff = connector.list_staff()
    assert staff and all(isinstance(s, UserRef) for s in staff)


def check_role_manager(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    user = connector.find_user(samples.username)
    role = samples.grantable_role
    before = {u.id for u in connector.list_holders(role)}
    assert user.id not in before
    with pytest.raises(ValueError):
        connector.grant(user, role, reason="  ")
    change = connector.grant(user, role, reason="conformance: grant")
    assert isinstance(change, RoleChange) and change.status is ChangeStatus.APPLIED and change.done
    assert change.reason == "conformance: grant"
    assert user.id in {u.id for u in connector.list_holders(role)}
    again = connector.grant(user, role, reason="conformance: grant again")
    assert again.status is ChangeStatus.UNCHANGED
    gone = connector.revoke(user, role, reason="conformance: revoke")
    assert gone.status is ChangeStatus.APPLIED
    assert {u.id for u in connector.list_holders(role)} == before
    assert connector.revoke(user, role, reason="conformance: revoke again").status is ChangeStatus.UNCHANGED


def check_messenger(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    first = connector.post(channel=samples.channel, title="Conformance check topic title",
                           text="A conformance check opened this thread.", key="conformance-post")
    assert isinstance(first, MessageRef) and first.thread_id
    same = connector.post(channel=samples.channel, title="Conformance check topic title",
                          text="A conformance check opened this thread.", key="conformance-post")
    assert same == first, "a repeated key must return the first message, not post again"
    reply = connector.reply(thread_id=first.thread_id, text="A conformance check replied here.")
    assert reply.thread_id == first.thread_id and reply.id != first.id
    dm = connector.direct_message(recipients=list(samples.recipients), title="Conformance private note",
                                  text="A private conformance message.")
    assert isinstance(dm, MessageRef) and dm.thread_id != first.thread_id


def check_ballot_box(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    ballot = connector.open_ballot(
        channel=samples.channel, question="Conformance: adopt the proposal?", options=["Yes", "No", "Abstain"],
        voters_group=samples.voters_group, closes_at=datetime.now(UTC) + timedelta(days=14),
    )
    assert isinstance(ballot, Ballot) and ballot.is_open and len(ballot.options) == 3
    assert [o.label for o in ballot.options] == ["Yes", "No", "Abstain"]
    assert connector.read_votes(ballot) == []
    for index, voter in enumerate(samples.voters):
        box.sandbox.cast_vote(box.url, ballot, voter=voter, option_index=index % 2)
    votes = connector.read_votes(ballot)
    assert sorted((v.voter.username, v.option_id) for v in votes) == sorted(
        (voter, ballot.options[i % 2].id) for i, voter in enumerate(samples.voters)
    )
    closed = connector.close_ballot(ballot)
    assert not closed.is_open
    assert not connector.close_ballot(closed).is_open  # closing twice is not an error
    assert len(connector.read_votes(closed)) == len(samples.voters)


def check_inbound(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    headers, body = box.sandbox.signed_request(kind=samples.inbound_kind,
                                               payload=samples.inbound_payload)
    event = connector.verify(headers=headers, body=body)
    assert isinstance(event, InboundEvent) and event.kind == samples.inbound_kind and event.dedupe_key
    assert connector.verify(headers=headers, body=body).dedupe_key == event.dedupe_key
    # The event names the instance it came from, the one the connector talks to, and its key
    # is scoped by it (two Forums, guilds or teams with the same ids never meet).
    assert isinstance(connector, Instanced) and connector.instance
    assert event.instance == connector.instance
    assert event.dedupe_key.startswith(f"{event.platform}:{event.instance}:")
    # What was signed is the raw body: one changed byte (the payload's "hello") breaks it.
    assert b"hello" in body
    with pytest.raises(InvalidSignature):
        connector.verify(headers=headers, body=body.replace(b"hello", b"HELLO"))
    unsigned = {k: v for k, v in headers.items() if "signature" not in k.lower()}
    with pytest.raises(InvalidSignature):
        connector.verify(headers=unsigned, body=body)


def check_calendar(box: Any, connector: Any) -> None:
    start = datetime.now(UTC) + timedelta(days=30)
    event = connector.schedule_event(title="Quarterly meeting", starts_at=start, ends_at=start + timedelta(hours=1),
                                     location="https://meet.example.invalid/wg")
    assert isinstance(event, ScheduledEvent) and event.id
    assert event.id in {e.id for e in connector.list_events()}


CHECKS = {
    Capability.DIRECTORY: check_directory,
    Capability.ROLE_MANAGER: check_role_manager,
    Capability.MESSENGER: check_messenger,
    Capability.BALLOT_BOX: check_ballot_box,
    Capability.INBOUND: check_inbound,
    Capability.CALENDAR: check_calendar,
}
