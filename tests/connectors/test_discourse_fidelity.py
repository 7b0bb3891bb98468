"""Where the Forum sandbox had let the connector pass and a current Discourse would not: each test
names the Discourse source it follows. The connector runs against the sandbox on 127.0.0.1;
nothing of ours is patched."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.discourse import doctor
from connectors.discourse.sandbox import DiscourseSandbox, default_seed

_LIMIT = {"admin_api_limit": 10_000}  # many votes and reads in one test


def _as(box: Any, username: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request as ``username`` makes it (the sandbox's all-users key acting as them)."""
    headers = {"Api-Key": box.sandbox.api_key, "Api-Username": username}
    return httpx.request(method, f"{box.url}{path}", timeout=10, headers=headers, **kw)


def _ballot(c: Any, **kw: Any) -> Any:
    return c.open_ballot(
        channel="Working Group",
        question=kw.pop("question", "Adopt the revised charter text?"),
        options=["Yes", "No"],
        **kw,
    )


def test_voter_pages_of_all_options_overlap_as_discourse_s_and_each_vote_counts_once(serve):
    # serialized_voters (plugins/poll/lib/poll.rb): one option's voters by OFFSET/LIMIT; all
    # options' by `row BETWEEN offset AND offset + limit` over 1-based row numbers, so there page
    # 2 starts with the last voter of page 1.
    seed = default_seed()
    voters = [f"voter_{i:02d}" for i in range(51)]
    seed["users"] += [{"username": v, "name": v.title()} for v in voters]
    seed["groups"][0]["members"] += voters
    box = serve(DiscourseSandbox(seed=seed, settings=_LIMIT))
    c = box.connect()
    ballot = _ballot(c, voters_group="working-group")
    for voter in voters:
        box.sandbox.cast_vote(box.url, ballot, voter=voter, option_index=0)
    yes = ballot.options[0].id

    def pages(**option: str) -> list[list[dict]]:
        query = {"post_id": ballot.id, "poll_name": "vote", "limit": 50, **option}
        return [
            _as(box, "system", "GET", "/polls/voters.json", params={**query, "page": page}).json()["voters"][yes]
            for page in (1, 2)
        ]

    one = pages(option_id=yes)
    assert [len(p) for p in one] == [50, 1] and one[1][0] not in one[0]
    every = pages()
    assert [len(p) for p in every] == [50, 2] and every[1][0] == every[0][-1]
    votes = c.read_votes(ballot)
    assert sorted(v.voter.username for v in votes) == voters  # 51 votes, none twice
    assert {v.option_id for v in votes} == {yes}


def test_a_vote_after_the_close_time_is_refused_though_the_poll_still_says_open(discourse):
    # Poll#is_closed? (plugins/poll/app/models/poll.rb) counts close_at as well as the status,
    # and DiscoursePoll::Poll.change_vote refuses "Poll must be open to vote."
    c = discourse.connect()
    ballot = _ballot(c, voters_group="working-group", closes_at=datetime.now(UTC) - timedelta(minutes=1))
    refused = _as(
        discourse,
        "cleo_marsh",
        "PUT",
        "/polls/vote",
        json={"post_id": int(ballot.id), "poll_name": "vote", "options": [ballot.options[0].id]},
    )
    assert (refused.status_code, refused.json()["errors"]) == (422, ["Poll must be open to vote."])
    [poll] = [p for p in discourse.state()["polls"] if p["post_id"] == int(ballot.id)]
    assert poll["status"] == "open" and poll["votes"] == {}
    assert c.read_votes(ballot) == []


def test_only_members_who_may_post_in_the_topic_can_vote(serve):
    # change_vote: Guardian#can_create_post? on the topic, so a group that may only see the
    # category ("See", 3) cannot vote, nor can a silenced member.
    seed = default_seed()
    seed["categories"][1]["permissions"] = {"working-group": 3, "board": 2}
    seed["groups"][1]["members"].append("cleo_marsh")  # in a group that may reply
    box = serve(DiscourseSandbox(seed=seed))
    c = box.connect()
    ballot = _ballot(c)
    vote = {"post_id": int(ballot.id), "poll_name": "vote", "options": [ballot.options[0].id]}
    refused = _as(box, "dario_fenwick", "PUT", "/polls/vote", json=vote)
    assert (refused.status_code, refused.json()["errors"]) == (
        422,
        ["You can't vote because you can't post in this topic."],
    )
    assert _as(box, "cleo_marsh", "PUT", "/polls/vote", json=vote).status_code == 200
    felix = box.sandbox._user_by_name("felix_oakes")
    until = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    _as(
        box,
        "system",
        "PUT",
        f"/admin/users/{felix['id']}/silence.json",
        json={"silenced_till": until, "reason": "test"},
    ).raise_for_status()
    assert _as(box, "felix_oakes", "PUT", "/polls/vote", json=vote).status_code == 422
    assert sorted(v.voter.username for v in c.read_votes(ballot)) == ["cleo_marsh"]
    # PollsController#toggle_status answers a member who is neither staff nor the poster 422.
    toggled = _as(box, "cleo_marsh", "PUT", "/polls/toggle_status", json={**vote, "status": "closed"})
    assert toggled.status_code == 422 and "staff member or the original poster" in toggled.json()["errors"][0]


def test_a_topic_title_is_used_once_and_the_connector_dates_a_second_one(discourse):
    # Topic's `unique_among` validation (app/models/topic.rb): 422 "Title has already been used",
    # any case, among topics; private messages may repeat a title.
    c = discourse.connect()
    title = "Welcome Cleo Marsh to the working group"
    first = c.post(channel="Working Group", title=title, text="Cleo joined the working group today.", key="welcome:1")
    again = _as(
        discourse,
        "system",
        "POST",
        "/posts.json",
        json={"title": title.upper(), "raw": "The same title once more, in capitals.", "category": 5},
    )
    assert (again.status_code, again.json()["errors"]) == (422, ["Title has already been used"])
    c.direct_message(recipients=["cleo_marsh"], title=title, text="A message may repeat it.", key="welcome:dm")
    second = c.post(channel="Working Group", title=title, text="Cleo joined the working group again.", key="welcome:2")
    topics = {t["id"]: t["title"] for t in discourse.state()["topics"]}
    assert topics[int(first.thread_id)] == title
    assert topics[int(second.thread_id)] == f"{title} ({datetime.now(UTC):%Y-%m-%d})"
    # The same key again finds the dated topic (external_id): nothing posted twice.
    assert c.post(
        channel="Working Group", title=title, text="Cleo joined the working group again.", key="welcome:2"
    ) == (second)
    assert len(discourse.state()["topics"]) == 3


def test_a_suspended_member_s_secret_vote_is_left_out_not_fatal(serve, caplog):
    # lib/auth/default_current_user_provider.rb: an API key acting as a suspended or
    # deactivated user gets InvalidAccess (403), so that member's own vote cannot be read.
    seed = default_seed()
    next(u for u in seed["users"] if u["username"] == "dario_fenwick")["active"] = False
    box = serve(DiscourseSandbox(seed=seed))
    c = box.connect()
    ballot = _ballot(c, question="Secret: remove someone from the group?", voters_group="working-group", secret=True)
    for voter, index in (("avery_quill", 0), ("cleo_marsh", 1)):
        box.sandbox.cast_vote(box.url, ballot, voter=voter, option_index=index)
    cleo = box.sandbox._user_by_name("cleo_marsh")
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    _as(
        box, "system", "PUT", f"/admin/users/{cleo['id']}/suspend.json", json={"suspend_until": until, "reason": "test"}
    ).raise_for_status()
    for who in ("cleo_marsh", "dario_fenwick"):
        refused = _as(box, who, "GET", f"/posts/{ballot.id}.json")
        # Not the bad-credentials answer, which the connector takes for a wrong key.
        assert refused.status_code == 403 and "API username or key" not in refused.json()["errors"][0]
    with caplog.at_level(logging.WARNING, logger="charterflow.connectors.discourse"):
        votes = c.read_votes(ballot)
    assert [(v.voter.username, v.option_id) for v in votes] == [("avery_quill", ballot.options[0].id)]
    assert "cleo_marsh" in caplog.text and box.sandbox.api_key not in caplog.text


def test_the_doctor_says_when_the_wg_group_may_see_but_not_vote(serve):
    # The poll plugin refuses votes from whoever may not post in the ballot's topic, so a WG group
    # with only "See" on the WG category (permission type 3) could never vote there.
    seed = default_seed()
    seed["categories"][1]["permissions"] = {"working-group": 3}
    for box, ok in ((serve(DiscourseSandbox()), True), (serve(DiscourseSandbox(seed=seed)), False)):
        [votes] = [c for c in doctor.check(box.connect().settings) if c.name == "votes in Working Group"]
        assert votes.ok is ok, votes
    assert "'working-group' group may not reply" in votes.detail and "Create or Reply" in votes.fix
