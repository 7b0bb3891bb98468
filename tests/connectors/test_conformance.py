"""The conformance suite: every registered connector that loads, each capability it declares,
against its own sandbox served on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import (
    CAPABILITY_PROTOCOLS,
    PROTOCOLS,
    AccountNames,
    Activity,
    AuthorNames,
    Ballot,
    Capability,
    ChangeStatus,
    ChannelText,
    Directory,
    GuideShelf,
    InboundEvent,
    Instanced,
    Links,
    MessageRef,
    ModerationEntry,
    ModerationLog,
    ModeratorsRoom,
    ModeratorsRoomHost,
    NewcomerWelcome,
    OnboardingPrompts,
    OperatorAccount,
    PlaceLinks,
    PlatformReport,
    PlatformReports,
    Redelivery,
    Role,
    RoleChange,
    RoleResolver,
    RoomMessage,
    RoomReader,
    RoomWriter,
    ScheduledEvent,
    TallyDisplay,
    UserRef,
    WorkingGroupHome,
)
from connectors.errors import FatalError, InvalidSignature
from connectors.registry import discover

LOADED = [info for info in discover() if info.loaded]
CASES = [
    pytest.param((info.name, Capability(cap)), id=f"{info.name}-{cap.value}") for info in LOADED for cap in Capability
]


# The Protocols that are not Capability members: covered for every connector implementing one.
DESCRIPTIVE = [p for p in PROTOCOLS if p not in CAPABILITY_PROTOCOLS.values()]
EXTRA_CASES = [
    pytest.param((info.name, protocol), id=f"{info.name}-{protocol.__name__}")
    for info in LOADED
    for protocol in DESCRIPTIVE
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


def test_every_protocol_has_a_check():
    assert set(CHECKS) == set(Capability)
    assert set(EXTRA_CHECKS) == set(DESCRIPTIVE)


@pytest.mark.parametrize("case", EXTRA_CASES)
def test_descriptive_protocol(case: tuple[str, type], serve: Any) -> None:
    name, protocol = case
    info = next(i for i in LOADED if i.name == name)
    box = serve(info.cls.sandbox())
    connector = box.connect()
    try:
        if not isinstance(connector, protocol):
            pytest.skip(f"{name} does not implement {protocol.__name__}")
        EXTRA_CHECKS[protocol](box, connector)
    finally:
        connector.close()


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
    first = connector.post(
        channel=samples.channel,
        title="Conformance check topic title",
        text="A conformance check opened this thread.",
        key="conformance-post",
    )
    assert isinstance(first, MessageRef) and first.thread_id
    same = connector.post(
        channel=samples.channel,
        title="Conformance check topic title",
        text="A conformance check opened this thread.",
        key="conformance-post",
    )
    assert same == first, "a repeated key must return the first message, not post again"
    reply = connector.reply(thread_id=first.thread_id, text="A conformance check replied here.")
    assert reply.thread_id == first.thread_id and reply.id != first.id
    dm = connector.direct_message(
        recipients=list(samples.recipients), title="Conformance private note", text="A private conformance message."
    )
    assert isinstance(dm, MessageRef) and dm.thread_id != first.thread_id


def check_ballot_box(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    ballot = connector.open_ballot(
        channel=samples.channel,
        question="Conformance: adopt the proposal?",
        options=["Yes", "No", "Abstain"],
        voters_group=samples.voters_group,
        closes_at=datetime.now(UTC) + timedelta(days=14),
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
    headers, body = box.sandbox.signed_request(kind=samples.inbound_kind, payload=samples.inbound_payload)
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
    event = connector.schedule_event(
        title="Quarterly meeting",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        location="https://meet.example.invalid/wg",
    )
    assert isinstance(event, ScheduledEvent) and event.id
    assert event.id in {e.id for e in connector.list_events()}


def _sent_in_channel(connector: Any, samples: Any, key: str) -> MessageRef:
    # A message the bot posted in a channel (where an editor or a button message lives).
    if isinstance(connector, ChannelText):
        return connector.send_text(channel=samples.channel, text="A conformance message.", key=key)[0]
    return connector.post(
        channel=samples.channel, title="Conformance message title", text="A conformance message.", key=key
    )


def check_channel_text(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    long = "\n".join(f"Line {i} of a long conformance message." for i in range(200))
    refs = connector.send_text(channel=samples.channel, text=long, title="Conformance", key="conformance-text")
    assert len(refs) > 1 and all(isinstance(r, MessageRef) and r.id for r in refs)
    again = connector.send_text(channel=samples.channel, text=long, title="Conformance", key="conformance-text")
    assert [r.id for r in again] == [r.id for r in refs], "a repeated key must not post again"


def check_buttons(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    ref = connector.post_with_buttons(
        channel=samples.channel,
        text="Conformance: press one.",
        buttons=[("Yes", "conformance:yes"), ("No", "conformance:no")],
        key="conformance-buttons",
    )
    assert isinstance(ref, MessageRef) and ref.id
    assert (
        connector.post_with_buttons(
            channel=samples.channel,
            text="Conformance: press one.",
            buttons=[("Yes", "conformance:yes"), ("No", "conformance:no")],
            key="conformance-buttons",
        ).id
        == ref.id
    )
    with pytest.raises(ValueError):
        connector.post_with_buttons(channel=samples.channel, text="No buttons.", buttons=[])
    assert isinstance(connector, Directory), "a ButtonMessenger finds the member it messages"
    user = connector.find_user(samples.recipients[0])
    dm = connector.direct_message_with_button(
        user=user,
        title="Conformance",
        text="Press to confirm.",
        button_label="Confirm",
        custom_id="conformance:confirm",
        key="conformance-dm-button",
    )
    assert isinstance(dm, MessageRef) and dm.id and dm.thread_id != ref.thread_id
    plain = connector.post_components(
        channel=samples.channel, content="Conformance: no rows.", components=(), key="conformance-components"
    )
    assert isinstance(plain, MessageRef) and plain.id not in (ref.id, dm.id)


def check_message_editor(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    ref = _sent_in_channel(connector, samples, "conformance-edit")
    connector.edit_message(channel_id=ref.thread_id, message_id=ref.id, text="Conformance: edited.")
    connector.edit_message(channel_id=ref.thread_id, message_id=ref.id, text="Conformance: edited.")
    with pytest.raises(FatalError):
        connector.edit_message(channel_id=ref.thread_id, message_id="999999999999999999", text="Nothing here.")


def check_interactions(box: Any, connector: Any) -> None:
    token = box.sandbox.deferred_interaction(box.url)
    connector.edit_original(token, "Conformance: answered.")
    connector.edit_original(token, "Conformance: answered.")  # an edit is safe to repeat
    refs = connector.followup(token, "Conformance: a further answer.")
    assert refs and all(isinstance(r, MessageRef) and r.id for r in refs)
    with pytest.raises(FatalError):
        connector.edit_original("itok_unknown_conformance_token", "Nobody asked.")


# The smallest valid PNG (1x1, transparent).
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def check_uploader(box: Any, connector: Any) -> None:
    first = connector.upload(filename="conformance chart.png", content=_PNG)
    assert str(first["url"])
    again = connector.upload(filename="conformance chart.png", content=_PNG)
    assert again["url"] == first["url"], "the same content uploaded twice is one upload (safe to retry)"
    with pytest.raises(ValueError):
        connector.upload(filename="empty.png", content=b"")


def check_moderation_log(box: Any, connector: Any) -> None:
    entries = connector.moderation_entries(after=None, limit=5)
    assert len(entries) <= 5 and all(isinstance(e, ModerationEntry) for e in entries)
    if entries:
        later = connector.moderation_entries(after=entries[-1].id, limit=5)
        assert entries[-1].id not in {e.id for e in later}


def check_instanced(box: Any, connector: Any) -> None:
    assert connector.instance and connector.instance == connector.instance.strip()


def check_working_group_home(box: Any, connector: Any) -> None:
    channel, group = connector.working_group_space()
    assert channel.strip() and group.strip()
    Role.group(group)  # a usable group name


def check_role_resolver(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    assert connector.role_id(samples.grantable_role)
    with pytest.raises(FatalError):
        connector.role_id(Role.group("no-such-role-conformance"))


def check_links(box: Any, connector: Any) -> None:
    url = connector.thread_url("12345", slug="conformance-topic")
    assert url is None or (url.startswith(("http://", "https://")) and "12345" in url)
    assert connector.thread_url("") is None
    event = connector.event_url("67890")
    assert event is None or (event.startswith(("http://", "https://")) and "67890" in event)


def check_place_links(box: Any, connector: Any) -> None:
    links = connector.place_links()
    assert links and all(label.strip() and url.startswith(("http://", "https://")) for label, url in links)
    assert len({url for _, url in links}) == len(links)  # each place once


def check_operator_account(box: Any, connector: Any) -> None:
    assert connector.operator_name().strip()


def check_account_names(box: Any, connector: Any) -> None:
    # A member linked as one name and renamed since: found by id, under the name they have now.
    found = connector.find_user(box.sandbox.samples.username)
    assert connector.current_username(replace(found, username="a-name-given-up")) == found.username
    with pytest.raises(FatalError) as gone:
        connector.current_username(replace(found, id="999999999"))
    assert gone.value.status == 404


def check_tally_display(box: Any, connector: Any) -> None:
    samples = box.sandbox.samples
    ballot = connector.open_ballot(
        channel=samples.channel,
        question="Conformance: tally shown?",
        options=["Yes", "No", "Abstain"],
        voters_group=samples.voters_group,
    )
    connector.publish_tally(ballot.id, [3, 1, 0])
    closed = connector.close_ballot(ballot)
    assert not closed.is_open
    votes = connector.read_votes(closed)
    assert sorted(v.option_id for v in votes) == sorted([ballot.options[0].id] * 3 + [ballot.options[1].id])


def check_guide_shelf(box: Any, connector: Any) -> None:
    # R-GUIDE: one guide's messages, posted once, then edited in place (same ids); a part no
    # longer needed stays and says so.
    channel = box.sandbox.samples.channel
    limit, max_pieces, _ = connector.guide_format()
    assert limit >= 500 and max_pieces >= 1
    pieces = ["The first part of a conformance guide.", "The second part of a conformance guide."]
    refs = connector.shelve_guide(channel=channel, title="A conformance guide", pieces=pieces, key="conformance-guide")
    assert len(refs) == 2 and len({r.id for r in refs}) == 2 and all(isinstance(r, MessageRef) for r in refs)
    again = connector.shelve_guide(
        channel=channel,
        title="A conformance guide",
        placed=refs,
        pieces=["The first part, edited in place by the test."],
        key="conformance-guide",
    )
    assert [r.id for r in again] == [r.id for r in refs]


def check_newcomer_welcome(box: Any, connector: Any) -> None:
    channel = box.sandbox.samples.channel
    guides = [("A conformance guide", "https://example.org/guides/1")]
    where = connector.set_welcome(summary="New here? Start with the community guides.", guides=guides, channel=channel)
    assert (
        where
        and connector.set_welcome(summary="New here? Start with the community guides.", guides=guides, channel=channel)
        == where
    )


def check_onboarding_prompts(box: Any, connector: Any) -> None:
    # R-GUIDE: one prompt kept in step, written only when it differs.
    channel = box.sandbox.samples.channel
    options = [("A conformance guide", "https://example.org/guides/1"), ("Another conformance guide", "")]
    first = connector.keep_onboarding_prompt(title="Conformance guides", options=options, channel=channel)
    assert first.id and first.options == 2 and first.changed and first.where
    again = connector.keep_onboarding_prompt(title="Conformance guides", options=options, channel=channel)
    assert (again.id, again.changed) == (first.id, False)
    fewer = connector.keep_onboarding_prompt(
        title="Conformance guides", options=options[:1], channel=channel, prompt_id=first.id
    )
    assert (fewer.id, fewer.options, fewer.changed) == (first.id, 1, True)


def check_room_writer(box: Any, connector: Any) -> None:
    # R-COMMS: what the common room's bridge writes with.
    room = box.sandbox.samples.channel
    assert connector.room_text_limit() >= 500
    first = connector.room_post(
        room=room,
        text="Conformance: a conversation in the common room.",
        title="Conformance: common room topic",
        key="conformance-room",
    )
    again = connector.room_post(
        room=room,
        text="Conformance: a conversation in the common room.",
        title="Conformance: common room topic",
        key="conformance-room",
    )
    assert isinstance(first, MessageRef) and first.thread_id and again.id == first.id
    reply = connector.room_post(
        room=room,
        text="Conformance: a reply in that conversation.",
        thread_id=first.thread_id,
        key="conformance-room-reply",
    )
    assert reply.id != first.id and reply.thread_id == first.thread_id
    assert connector.room_key(room) and connector.room_key(room) == connector.room_key(room)
    assert connector.room_thread(room=room, message_id=first.id, name="Conformance") == first.thread_id
    connector.room_edit(
        room=room,
        thread_id=first.thread_id,
        message_id=reply.id,
        text="Conformance: the reply, edited where it was written.",
    )
    connector.room_delete(room=room, thread_id=first.thread_id, message_id=reply.id)
    connector.room_delete(room=room, thread_id=first.thread_id, message_id=reply.id)  # gone: fine


def check_author_names(box: Any, connector: Any) -> None:
    # R-COMMS: a pushed message names its author by id; the copy shows a name.
    who = box.sandbox.samples.recipients[0]
    name = connector.author_name(who)
    assert isinstance(name, str) and name.strip()
    assert connector.author_name(who) == name  # cached, the same
    assert connector.author_name("U0NOBODY0NOWHERE") is None


def check_room_reader(box: Any, connector: Any) -> None:
    room = box.sandbox.samples.channel
    assert isinstance(connector, RoomWriter), "a RoomReader's own posts are what it must recognise"
    ref = connector.room_post(room=room, text="Conformance: read me back.", title="Conformance: reader")
    newest = connector.room_messages(room=room, after=None, limit=10)
    assert newest and all(isinstance(m, RoomMessage) for m in newest)
    assert [m.id for m in newest] == sorted((m.id for m in newest), key=int)
    mine = next(m for m in newest if m.id == ref.id)
    assert mine.own and "read me back" in mine.text
    assert ref.id not in {m.id for m in connector.room_messages(room=room, after=ref.id)}


def check_moderators_room_host(box: Any, connector: Any) -> None:
    # R-SAFE-1: the room a report is shown in; a repost with the same key is the same message.
    room = connector.moderators_room()
    assert isinstance(room, ModeratorsRoom) and room.platform == connector.name
    text = "Conformance: Report #0: a message\nReply here with `claim`."
    first = room.post(text, buttons=[("Claim", "cfs:claim:0")], key="conformance-moderators-room")
    again = room.post(text, buttons=[("Claim", "cfs:claim:0")], key="conformance-moderators-room")
    assert isinstance(first, MessageRef) and first.id and again.id == first.id
    room.edit(first, "Conformance: Report #0: a message (resolved)\nNothing left to do.")


def check_platform_reports(box: Any, connector: Any) -> None:
    # R-SAFE-1: the platform's own reports, each with a stable id (the poll takes each once).
    found = connector.platform_reports()
    assert all(isinstance(r, PlatformReport) and r.id and r.platform == connector.name for r in found)
    assert [r.id for r in connector.platform_reports()][: len(found)] == [r.id for r in found]
    assert len({r.id for r in found}) == len(found)


def check_redelivery(box: Any, connector: Any) -> None:
    # What failed to reach the gateway, asked for again by event id (test_discourse_redelivery.py
    # sends and fails real deliveries); nothing failed after now, so nothing is asked for.
    asked = connector.redeliver_failed(since=datetime.now(UTC) - timedelta(days=2))
    assert isinstance(asked, list) and all(isinstance(i, str) for i in asked)
    assert connector.redeliver_failed(since=datetime.now(UTC) + timedelta(minutes=1)) == []


CHECKS = {
    Capability.DIRECTORY: check_directory,
    Capability.ROLE_MANAGER: check_role_manager,
    Capability.MESSENGER: check_messenger,
    Capability.BALLOT_BOX: check_ballot_box,
    Capability.INBOUND: check_inbound,
    Capability.CALENDAR: check_calendar,
    Capability.CHANNEL_TEXT: check_channel_text,
    Capability.BUTTONS: check_buttons,
    Capability.MESSAGE_EDITOR: check_message_editor,
    Capability.INTERACTIONS: check_interactions,
    Capability.UPLOADER: check_uploader,
}

EXTRA_CHECKS = {
    ModerationLog: check_moderation_log,
    Instanced: check_instanced,
    WorkingGroupHome: check_working_group_home,
    RoleResolver: check_role_resolver,
    Links: check_links,
    OperatorAccount: check_operator_account,
    TallyDisplay: check_tally_display,
    GuideShelf: check_guide_shelf,
    NewcomerWelcome: check_newcomer_welcome,
    OnboardingPrompts: check_onboarding_prompts,
    RoomReader: check_room_reader,
    RoomWriter: check_room_writer,
    AuthorNames: check_author_names,
    PlaceLinks: check_place_links,
    ModeratorsRoomHost: check_moderators_room_host,
    PlatformReports: check_platform_reports,
    Redelivery: check_redelivery,
    AccountNames: check_account_names,
}
