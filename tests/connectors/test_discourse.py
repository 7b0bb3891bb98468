"""The Discourse connector against its sandbox on 127.0.0.1: errors, roles, posts, webhooks,
settings and secrets."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import connectors.discourse.inbound as inbound
from connectors.base import ChangeStatus, Role, UserRef, url_instance
from connectors.discourse.connector import DiscourseConnector
from connectors.discourse.inbound import DiscourseWebhookVerifier, parse_event, sign_body
from connectors.discourse.sandbox import DiscourseSandbox, default_seed
from connectors.discourse.settings import DiscourseSettings
from connectors.errors import ConfigError, FatalError, InvalidSignature
from tests.support.net import LoopbackServer, request_of


def test_unknown_user_group_and_category_are_fatal_and_named(discourse):
    c = discourse.connect()
    with pytest.raises(FatalError, match="'ghost_user'.*not found"):
        c.find_user("ghost_user")
    cleo = c.find_user("cleo_marsh")
    with pytest.raises(FatalError, match="group 'no-such-group'"):
        c.grant(cleo, Role.group("no-such-group"), reason="test")
    with pytest.raises(FatalError, match="group 'no-such-group'"):
        c.list_holders(Role.group("no-such-group"))
    with pytest.raises(FatalError, match="category 'Nowhere'"):
        c.post(channel="Nowhere", title="A perfectly fine title", text="A perfectly fine body text.")
    ghost = UserRef(platform="discourse", id="9999", username="ghost_user")
    with pytest.raises(FatalError, match="'ghost_user'"):
        c.activity(ghost)


def test_wrong_api_key_is_a_config_error_raised_once(discourse):
    c = discourse.connect(api_key=SecretStr("not-the-right-key-123"))
    with pytest.raises(ConfigError) as err:
        c.find_user("cleo_marsh")
    assert "CHARTERFLOW_DISCOURSE_API_KEY" in str(err.value)
    assert "not-the-right-key-123" not in str(err.value)
    assert discourse.state()["responses"]["GET /u/{username}.json"] == {"403": 1}


def test_wrong_api_username_names_that_setting(discourse):
    seed = default_seed()
    seed["api_keys"] = [{"key": "single-user-key-1234", "username": "system"}]
    box = DiscourseSandbox(seed=seed)

    with LoopbackServer(box.app) as server:
        c = box.connect(server.url, api_username="avery_quill")
        with pytest.raises(ConfigError, match="CHARTERFLOW_DISCOURSE_API_USERNAME"):
            c.find_user("cleo_marsh")


GRANULAR = "granular-key-invented-0007"
REFUSED = "You are not permitted to view the requested resource. The API username or key is invalid."


def _granular(serve: Any, *scopes: str) -> Any:
    seed = default_seed()
    seed["api_keys"] = [{"key": "global-key-invented-0001"}, {"key": GRANULAR, "scopes": list(scopes)}]
    return serve(DiscourseSandbox(seed=seed))


def test_a_granular_key_reaches_only_what_its_scopes_cover(serve):
    box = _granular(serve, "topics:write", "topics:read", "categories:list")
    as_system = {"Api-Key": GRANULAR, "Api-Username": "system"}
    category = next(
        c["id"]
        for c in httpx.get(f"{box.url}/categories.json", headers=as_system, timeout=10).json()["category_list"][
            "categories"
        ]
        if c["name"] == "Working Group"
    )
    made = httpx.post(
        f"{box.url}/posts.json",
        headers=as_system,
        timeout=10,
        json={"title": "A topic by a granular key", "raw": "Posted with a key scoped to topics.", "category": category},
    )
    assert made.status_code == 200 and made.json()["username"] == "system"  # served as the key's user
    assert httpx.get(f"{box.url}/t/{made.json()['topic_id']}.json", headers=as_system, timeout=10).status_code == 200
    cleo = box.sandbox._user_by_name("cleo_marsh")
    posts_before = len(box.sandbox.posts)
    for method, path, body in (
        ("PUT", f"/admin/users/{cleo['id']}/grant_moderation.json", None),  # no scope covers it
        ("GET", "/u/cleo_marsh.json", None),  # users:show not granted
        ("PUT", f"/posts/{made.json()['id']}.json", {"post": {"raw": "Edited without posts:edit."}}),
    ):
        refused = httpx.request(method, f"{box.url}{path}", headers=as_system, json=body, timeout=10)
        # ApiKey#request_allowed? fails: the same 403 as a wrong key, not the route's own answer.
        assert (refused.status_code, refused.json()) == (403, {"errors": [REFUSED], "error_type": "invalid_access"})
    assert not cleo["moderator"] and len(box.sandbox.posts) == posts_before
    assert box.sandbox.posts[made.json()["id"]]["raw"] == "Posted with a key scoped to topics."
    # A route the sandbox lacks is still its loud 501, whatever the key.
    assert httpx.get(f"{box.url}/badges.json", headers=as_system, timeout=10).status_code == 501


def test_a_key_can_read_its_own_scopes_and_a_read_key_only_gets(serve):
    box = _granular(serve, "global:read", "users:show")
    as_system = {"Api-Key": GRANULAR, "Api-Username": "system"}
    scopes = httpx.get(f"{box.url}/session/scopes.json", headers=as_system, timeout=10).json()["scopes"]
    assert [(s["resource"], s["action"], s["key"]) for s in scopes] == [
        ("global", "read", "read"),
        ("users", "show", "show"),
    ]
    assert scopes[1]["urls"] == ["/u/{username} (GET)"] and scopes[1]["parameters"] == [
        "username",
        "external_id",
        "external_provider",
    ]
    glob = {"Api-Key": "global-key-invented-0001", "Api-Username": "system"}
    assert httpx.get(f"{box.url}/session/scopes.json", headers=glob, timeout=10).json() == {"scopes": []}
    assert httpx.get(f"{box.url}/session/scopes.json", timeout=10).status_code == 404  # no key
    # global:read: any GET, the admin ones too; nothing else.
    assert httpx.get(f"{box.url}/admin/site_settings.json", headers=as_system, timeout=10).status_code == 200
    wrote = httpx.post(
        f"{box.url}/posts.json", headers=as_system, timeout=10, json={"raw": "A reply nobody may post.", "topic_id": 1}
    )
    assert wrote.status_code == 403 and wrote.json()["errors"] == [REFUSED]


def test_a_seeded_scope_discourse_lacks_is_a_config_error_naming_it():
    seed = default_seed()
    seed["api_keys"] = [{"key": GRANULAR, "scopes": ["topics:write", "polls:vote"]}]
    with pytest.raises(ConfigError, match=r"polls:vote"):
        DiscourseSandbox(seed=seed)


def test_the_connector_with_a_granular_key_says_to_use_a_global_one(serve):
    box = _granular(serve, "topics:write")
    c = box.connect(api_key=SecretStr(GRANULAR))
    with pytest.raises(ConfigError) as err:
        c.find_user("cleo_marsh")
    assert "Scope Global" in str(err.value) and GRANULAR not in str(err.value)


def test_admin_routes_answer_404_to_a_non_admin_and_the_error_says_so(discourse):
    c = discourse.connect(api_username="cleo_marsh")
    cleo = c.find_user("cleo_marsh")
    with pytest.raises(FatalError) as err:
        c.activity(cleo)
    assert err.value.status == 404 and "not an admin" in str(err.value)


def test_activity_reads_the_admin_user(discourse):
    c = discourse.connect()
    act = c.activity(c.find_user("cleo_marsh"))
    assert act.days_visited == 143 and act.post_count == 88
    assert act.created_at.isoformat() == "2024-04-18T08:30:00+00:00"
    assert {u.username for u in c.list_staff()} == {"system", "avery_quill", "bram_tolliver"}
    assert {u.username for u in c.list_holders(Role.moderator())} >= {"bram_tolliver"}
    assert "bram_tolliver" not in {u.username for u in c.list_holders(Role.admin())}


def test_moderator_grant_and_revoke_are_recorded_once_with_reason(discourse, caplog):
    c = discourse.connect()
    dario = c.find_user("dario_fenwick")
    caplog.set_level(logging.INFO, logger="charterflow.connectors.discourse")
    assert c.grant(dario, Role.moderator(), reason="R-MOD-2 vote 2026-10").status is ChangeStatus.APPLIED
    assert c.grant(dario, Role.moderator(), reason="R-MOD-2 vote 2026-10").status is ChangeStatus.UNCHANGED
    assert c.revoke(dario, Role.moderator(), reason="R-MOD-5 term ended").status is ChangeStatus.APPLIED
    actions = [(r["action"], r["username"]) for r in discourse.state()["role_changes"]]
    assert actions == [("grant_moderation", "dario_fenwick"), ("revoke_moderation", "dario_fenwick")]
    assert "R-MOD-2 vote 2026-10" in caplog.text


def test_grant_admin_is_pending_human_confirmation_not_success(discourse):
    c = discourse.connect()
    cleo = c.find_user("cleo_marsh")
    change = c.grant(cleo, Role.admin(), reason="R-ADMIN-1 appointment")
    assert change.status is ChangeStatus.PENDING_CONFIRMATION and not change.done
    assert "confirmation" in change.detail
    assert "cleo_marsh" not in {u.username for u in c.list_holders(Role.admin())}
    state = discourse.state()
    assert state["pending_admin_confirmations"][0]["user_id"] == int(cleo.id)
    assert state["emails"][0]["type"] == "admin_confirmation"
    # A person opens the e-mailed link; the next grant sees it done.
    httpx.post(f"{discourse.url}/_sandbox/confirm_admin", json={"user_id": int(cleo.id)}).raise_for_status()
    assert c.grant(cleo, Role.admin(), reason="R-ADMIN-1 appointment").status is ChangeStatus.UNCHANGED
    assert c.revoke(cleo, Role.admin(), reason="R-ADMIN-3 rotation").status is ChangeStatus.APPLIED


def test_grant_admin_with_a_2fa_acting_admin_is_fatal_with_the_reason(serve):
    seed = default_seed()
    seed["users"][0]["second_factor_enabled"] = True
    box = serve(DiscourseSandbox(seed=seed))
    c = box.connect()
    with pytest.raises(FatalError, match="HTTP 403"):
        c.grant(c.find_user("cleo_marsh"), Role.admin(), reason="test")


def test_group_membership_uses_the_id_resolved_once(discourse):
    c = discourse.connect()
    esme = c.find_user("esme_voss")
    c.grant(esme, Role.group("working-group"), reason="R-MEM-1 accepted")
    c.revoke(esme, Role.group("working-group"), reason="R-MEM-4 left")
    c.grant(esme, Role.group("working-group"), reason="R-MEM-1 accepted again")
    assert discourse.count("GET /groups/{name}.json") == 1
    state = discourse.state()
    assert "esme_voss" in next(g for g in state["groups"] if g["name"] == "working-group")["members"]


@pytest.mark.parametrize(
    ("title", "text", "message"),
    [
        ("Too short", "A body that is long enough to pass.", "Title is too short"),
        ("A title that is long enough", "tiny", "Body is too short"),
    ],
)
def test_422_validation_errors_surface_discourse_s_message(discourse, title, text, message):
    # The connector fills a body up to Discourse's default minimum (20): a site asking more refuses it.
    discourse.sandbox.settings.min_first_post_length = 100
    c = discourse.connect()
    with pytest.raises(FatalError, match=message) as err:
        c.post(channel="General", title=title, text=text)
    assert err.value.status == 422


def test_duplicate_body_is_refused_by_discourse_except_from_staff(discourse):
    # PostValidator#unique_post_validator skips staff: the admin API user may repeat a body.
    staff = discourse.connect()
    staff.post(channel="General", title="First topic with a body", text="Exactly the same body text here.")
    assert staff.post(channel="General", title="Second topic, same body", text="Exactly the same body text here.").id
    member = discourse.connect(api_username="cleo_marsh")
    member.post(channel="General", title="A member's first topic", text="A member's very same body text.")
    with pytest.raises(FatalError, match="too similar"):
        member.post(channel="General", title="A member's second topic", text="A member's very same body text.")


def test_ballot_voters_are_read_page_by_page(serve):
    seed = default_seed()
    voters = [f"voter_{i:02d}" for i in range(57)]
    seed["users"] += [{"username": v, "name": v.title()} for v in voters]
    seed["groups"][0]["members"] += voters
    box = serve(DiscourseSandbox(seed=seed, settings={"admin_api_limit": 10_000}))
    c = box.connect()
    ballot = c.open_ballot(
        channel="Working Group",
        question="Adopt the revised charter text?",
        options=["Yes", "No"],
        voters_group="working-group",
    )
    for i, voter in enumerate(voters):
        box.sandbox.cast_vote(box.url, ballot, voter=voter, option_index=0 if i < 53 else 1)
    votes = c.read_votes(ballot)
    assert len(votes) == 57 and len({v.voter.username for v in votes}) == 57
    assert box.state()["responses"]["GET /polls/voters.json"]["200"] == 3  # Yes: 2 pages, No: 1
    closed = c.close_ballot(ballot)
    with pytest.raises(httpx.HTTPStatusError):
        box.sandbox.cast_vote(box.url, closed, voter="cleo_marsh", option_index=0)


def _as(box, username, method, path, **kw):
    """A request as ``username`` makes it (the sandbox's all-users key acting as them)."""
    return httpx.request(
        method, f"{box.url}{path}", timeout=10, headers={"Api-Key": box.sandbox.api_key, "Api-Username": username}, **kw
    )


def test_secret_ballot_lists_no_voters_hides_counts_until_closed_and_is_read_per_voter(discourse):
    # R-VOTE-SECRET: Discourse's Poll#can_see_voters? needs a public poll, so nobody (staff
    # included) can list who voted; results=on_close hides the counts until it is closed.
    c = discourse.connect()
    ballot = c.open_ballot(
        channel="Working Group",
        question="Secret: remove someone from the group?",
        options=["Yes", "No", "Abstain"],
        voters_group="working-group",
        secret=True,
        text="Nobody sees who voted how.",
    )
    [poll] = [p for p in discourse.state()["polls"] if p["post_id"] == int(ballot.id)]
    assert poll["public"] is False and poll["results"] == "on_close"
    for voter, index in (("avery_quill", 0), ("cleo_marsh", 1)):
        discourse.sandbox.cast_vote(discourse.url, ballot, voter=voter, option_index=index)
    for reader in ("system", "avery_quill", "dario_fenwick"):
        listed = _as(
            discourse,
            reader,
            "GET",
            "/polls/voters.json",
            params={"post_id": ballot.id, "poll_name": "vote", "option_id": ballot.options[0].id},
        )
        assert listed.status_code == 400 and listed.json()["error_type"] == "invalid_parameters"
        post = _as(discourse, reader, "GET", f"/posts/{ballot.id}.json").json()
        [shown] = post["polls"]
        assert "public" not in shown and all("votes" not in o for o in shown["options"])
        assert shown["voters"] == 2  # how many voted is no secret; who and how is
        # Each reader sees their own vote only.
        own = {"avery_quill": [ballot.options[0].id]}.get(reader)
        assert post.get("polls_votes") == ({"vote": own} if own else None)
    # The connector reads each group member's own choice, as that member.
    votes = c.read_votes(ballot)
    assert sorted((v.voter.username, v.option_id) for v in votes) == [
        ("avery_quill", ballot.options[0].id),
        ("cleo_marsh", ballot.options[1].id),
    ]
    assert "GET /polls/voters.json" not in {k for k, v in discourse.state()["responses"].items() if "200" in v}
    c.close_ballot(ballot, result="Closed: failed, 1 yes, 1 no, 0 abstain of 3 (Forum 2)")
    [closed] = _as(discourse, "dario_fenwick", "GET", f"/posts/{ballot.id}.json").json()["polls"]
    assert closed["status"] == "closed" and [o["votes"] for o in closed["options"]] == [1, 1, 0]
    # Still no voter list once closed: the poll is secret for good.
    assert (
        _as(
            discourse, "dario_fenwick", "GET", "/polls/voters.json", params={"post_id": ballot.id, "poll_name": "vote"}
        ).status_code
        == 400
    )


def test_sandbox_poll_visibility_follows_discourse(discourse):
    # Poll#can_see_results? / can_see_voters?: a public poll with results=on_close lists neither
    # counts nor voters until it is closed; results=on_vote shows counts to those who voted.
    c = discourse.connect()
    post = c.post(
        channel="Working Group",
        title="Two polls with hidden results",
        text=(
            "[poll name=later public=true results=on_close]\n* A\n* B\n[/poll]\n\n"
            "[poll name=voted results=on_vote]\n* A\n* B\n[/poll]"
        ),
    )
    polls = {p["name"]: p for p in discourse.state()["polls"] if p["post_id"] == int(post.id)}
    for name in polls:
        _as(
            discourse,
            "cleo_marsh",
            "PUT",
            "/polls/vote",
            json={"post_id": int(post.id), "poll_name": name, "options": [polls[name]["options"][0]["id"]]},
        ).raise_for_status()
    voters = {"post_id": post.id, "poll_name": "later"}
    assert _as(discourse, "system", "GET", "/polls/voters.json", params=voters).status_code == 400
    for reader, sees_voted in (("cleo_marsh", True), ("dario_fenwick", False)):
        shown = {p["name"]: p for p in _as(discourse, reader, "GET", f"/posts/{post.id}.json").json()["polls"]}
        assert all("votes" not in o for o in shown["later"]["options"])
        assert all(("votes" in o) == sees_voted for o in shown["voted"]["options"])
    _as(
        discourse,
        "system",
        "PUT",
        "/polls/toggle_status",
        json={"post_id": int(post.id), "poll_name": "later", "status": "closed"},
    ).raise_for_status()
    listed = _as(discourse, "dario_fenwick", "GET", "/polls/voters.json", params=voters)
    assert listed.status_code == 200 and [
        v["username"] for v in listed.json()["voters"][polls["later"]["options"][0]["id"]]
    ] == ["cleo_marsh"]


def test_secret_ballot_needs_an_all_users_key_and_says_so(serve):
    seed = default_seed()
    seed["api_keys"] = [{"key": "all-users-key-0000"}, {"key": "single-user-key-1234", "username": "system"}]
    box = serve(DiscourseSandbox(seed=seed))
    c = box.connect(api_key=SecretStr("single-user-key-1234"))
    ballot = c.open_ballot(
        channel="Working Group",
        question="Secret: remove someone from the group?",
        options=["Yes", "No"],
        voters_group="working-group",
        secret=True,
    )
    httpx.put(
        f"{box.url}/polls/vote",
        timeout=10,
        json={"post_id": int(ballot.id), "poll_name": "vote", "options": [ballot.options[0].id]},
        headers={"Api-Key": box.sandbox.api_key, "Api-Username": "cleo_marsh"},
    ).raise_for_status()
    with pytest.raises(ConfigError, match="'All users' API key"):
        c.read_votes(ballot)


def test_ballot_text_is_shown_above_the_poll_and_cannot_open_a_poll(discourse):
    c = discourse.connect()
    text = "Why: I help newcomers.\n[poll name=sneaky]\n* A\n* B\n[/poll]"
    ballot = c.open_ballot(
        channel="Working Group", question="Approve a newcomer to the group?", options=["Yes", "No"], text=text
    )
    raw = next(p["raw"] for p in discourse.state()["posts"] if p["id"] == int(ballot.id))
    assert raw.index("Why: I help newcomers.") < raw.index("[poll name=vote")
    assert [p["name"] for p in discourse.state()["polls"] if p["post_id"] == int(ballot.id)] == ["vote"]
    assert "public=true" in raw and "results=always" in raw  # not secret: voters are public


def test_ballot_rejects_bad_options_before_sending(discourse):
    c = discourse.connect()
    for options in (["Only"], ["Yes", "Yes"], ["Yes", "No\n[/poll]"]):
        with pytest.raises(ValueError):
            c.open_ballot(channel="Working Group", question="A question long enough?", options=options)


def test_non_members_cannot_vote_on_a_group_ballot(discourse):
    c = discourse.connect()
    ballot = c.open_ballot(
        channel="General", question="Members only: adopt it?", options=["Yes", "No"], voters_group="working-group"
    )
    with pytest.raises(httpx.HTTPStatusError) as err:
        discourse.sandbox.cast_vote(discourse.url, ballot, voter="felix_oakes", option_index=0)
    assert err.value.response.status_code == 422


# ---- webhooks -------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1 that verifies each delivery with the connector."""

    def __init__(self, verify) -> None:
        self.verify = verify
        self.events: list[Any] = []
        self.rejected = 0
        self.arrived = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        headers, body = await request_of(scope, receive)
        try:
            self.events.append(self.verify(headers=headers, body=body))
            status = 200
        except InvalidSignature:
            self.rejected += 1
            status = 401
        self.arrived.set()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_webhooks_arrive_signed_and_parse(serve):
    verifier = DiscourseWebhookVerifier(secret=SecretStr("hook-secret-for-tests"))
    receiver = Receiver(verifier.verify)

    with LoopbackServer(receiver) as hook_server:
        box = serve(
            DiscourseSandbox(webhook_url=f"{hook_server.url}/hooks/discourse", webhook_secret="hook-secret-for-tests")
        )
        c = box.connect()
        ref = c.post(channel="Working Group", title="Webhook topic for the board", text="Body of the webhook topic.")
        httpx.post(f"{box.url}/_sandbox/webhooks/ping").raise_for_status()
        wait_for(lambda: len(receiver.events) >= 3)
        kinds = [e.kind for e in receiver.events]
        assert kinds == ["topic_created", "post_created", "ping"]
        topic, post, ping = receiver.events
        assert topic.attributes["topic_id"] == ref.thread_id and topic.actor == "system"
        assert post.attributes["post_id"] == ref.id and post.attributes["post_number"] == "1"
        assert ping.data == {"ping": "OK"}
        assert len({e.dedupe_key for e in receiver.events}) == 3
        assert all(e.dedupe_key.startswith("discourse:127.0.0.1:") for e in receiver.events)
        wait_for(lambda: len(box.state()["webhook_deliveries"]) == 3)
        assert {d["status"] for d in box.state()["webhook_deliveries"]} == {200}
        assert receiver.rejected == 0


def _listed_hooks(box: Any) -> list[dict[str, Any]]:
    headers = {"Api-Key": box.sandbox.api_key, "Api-Username": "system"}
    listed = httpx.get(f"{box.url}/admin/api/web_hooks.json", headers=headers, timeout=10)
    assert listed.status_code == 200 and listed.json()["total_rows_web_hooks"] == len(listed.json()["web_hooks"])
    return listed.json()["web_hooks"]


def test_the_sites_webhook_is_listed_as_discourse_lists_it_with_its_last_delivery(serve):
    # Admin::WebHooksController#index: what `charterflow doctor` reads. A delivery to a port
    # nobody listens on fails (status 2); an inactive webhook sends nothing (status 4).
    with LoopbackServer(Receiver(lambda **_: None)) as gone:
        dead = f"{gone.url}/hooks/discourse"
    seed = default_seed()
    seed["settings"] = {"webhook_retry_delays": []}
    seed["webhook"] = {"url": dead, "secret": "hook-secret-for-tests"}
    box = serve(DiscourseSandbox(seed=seed))
    (hook,) = _listed_hooks(box)
    assert (hook["payload_url"], hook["content_type"], hook["active"], hook["last_delivery_status"]) == (
        dead,
        1,
        True,
        1,
    )
    assert {e["name"]: e["id"] for e in hook["web_hook_event_types"]}["reviewable_created"] == 901
    httpx.post(f"{box.url}/_sandbox/webhooks/ping").raise_for_status()
    wait_for(lambda: len(box.state()["webhook_deliveries"]) == 1)
    assert _listed_hooks(box)[0]["last_delivery_status"] == 2
    box.sandbox.webhook.active = False
    httpx.post(f"{box.url}/_sandbox/webhooks/ping").raise_for_status()
    assert _listed_hooks(box)[0]["last_delivery_status"] == 4 and len(box.state()["webhook_deliveries"]) == 1
    box.sandbox.webhook.url = None  # no webhook at all
    assert _listed_hooks(box) == []


def test_a_seeded_webhook_event_discourse_lacks_is_a_config_error_naming_it():
    seed = default_seed()
    seed["webhook"] = {"events": ["post_created", "flag_created"]}  # Discourse has no flag webhook
    with pytest.raises(ConfigError, match="flag_created"):
        DiscourseSandbox(seed=seed)


def test_webhook_verification_rejects_tampering_and_uses_constant_time_compare(monkeypatch):
    verifier = DiscourseWebhookVerifier(secret=SecretStr("s3cret-hook"))
    body = b'{"topic":{"id":5,"title":"A topic","created_by":{"username":"cleo_marsh"}}}'
    headers = {
        "X-Discourse-Event-Id": "41",
        "X-Discourse-Event": "topic_created",
        "X-Discourse-Event-Type": "topic",
        "X-Discourse-Instance": "https://forum.example.org",
        "X-Discourse-Event-Signature": sign_body("s3cret-hook", body),
    }

    compared = []
    real = inbound.hmac.compare_digest
    monkeypatch.setattr(inbound.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    event = verifier.verify(headers={k.lower(): v for k, v in headers.items()}, body=body)
    assert compared and event.kind == "topic_created" and event.actor == "cleo_marsh"
    assert event.dedupe_key == "discourse:forum.example.org:41" and event.instance == "forum.example.org"
    assert event.attributes["topic_id"] == "5"
    for bad in (
        {**headers, "X-Discourse-Event-Signature": "sha256=" + "0" * 64},
        {**headers, "X-Discourse-Event-Signature": sign_body("other-secret", body)},
        {k: v for k, v in headers.items() if k != "X-Discourse-Event-Signature"},
    ):
        with pytest.raises(InvalidSignature):
            verifier.verify(headers=bad, body=body)
    with pytest.raises(InvalidSignature):
        verifier.verify(headers=headers, body=body + b" ")
    with pytest.raises(InvalidSignature):
        parse_event(headers={**headers, "X-Discourse-Event-Id": ""}, body=body)
    with pytest.raises(InvalidSignature):
        parse_event(headers=headers, body=b"not json")


def test_a_connector_without_webhook_secret_refuses_webhooks(discourse):
    c = discourse.connect(webhook_secret=None)
    headers, body = discourse.sandbox.signed_request(kind="ping", payload={"ping": "OK"})
    with pytest.raises(ConfigError, match="CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET"):
        c.verify(headers=headers, body=body)


# ---- settings and secrets ---------------------------------------------------------------------


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARTERFLOW_DISCOURSE_URL", "https://forum.example.org/")
    monkeypatch.setenv("CHARTERFLOW_DISCOURSE_API_KEY", "env-key-abcdef")
    monkeypatch.setenv("CHARTERFLOW_DISCOURSE_WEBHOOK_SECRET", "env-hook-secret")
    monkeypatch.setenv("CHARTERFLOW_DISCOURSE_CATEGORY", "Board Room")
    s = DiscourseSettings.load()
    assert s.url == "https://forum.example.org" and s.api_username == "system" and s.category == "Board Room"
    assert s.api_key.get_secret_value() == "env-key-abcdef"
    c = DiscourseConnector.from_env()
    assert "env-key-abcdef" not in repr(c) + repr(s) + str(s) + repr(c.client) + repr(c.client.policy)
    c.close()


def test_missing_settings_name_each_variable(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("URL", "API_KEY"):
        monkeypatch.delenv(f"CHARTERFLOW_DISCOURSE_{var}", raising=False)
    with pytest.raises(ConfigError) as err:
        DiscourseConnector.from_env()
    assert "CHARTERFLOW_DISCOURSE_URL is not set" in str(err.value)
    assert "CHARTERFLOW_DISCOURSE_API_KEY is not set" in str(err.value)
    monkeypatch.setenv("CHARTERFLOW_DISCOURSE_URL", "forum.example.org")
    monkeypatch.setenv("CHARTERFLOW_DISCOURSE_API_KEY", "k" * 20)
    with pytest.raises(ConfigError, match="CHARTERFLOW_DISCOURSE_URL is invalid"):
        DiscourseSettings.load()


def test_secrets_never_appear_in_logs_errors_or_reprs(serve, caplog):
    api_key, hook = "sbx-SECRET-api-key-0042", "SECRET-hook-0042"
    seed = default_seed()
    seed["api_keys"] = [{"key": api_key}]
    box = serve(DiscourseSandbox(seed=seed, webhook_secret=hook))
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    good = box.connect(max_retries=1)
    texts += [repr(good), repr(good.settings), str(good.settings), repr(good.client), repr(good._verifier)]
    texts.append(repr(good.settings.model_dump()))
    good.grant(good.find_user("cleo_marsh"), Role.moderator(), reason="test")
    box.faults(error_rate=1.0, error_status=503)
    for call in (
        lambda: good.find_user("cleo_marsh"),
        lambda: good.grant(
            UserRef(platform="discourse", id="4", username="dario_fenwick"), Role.moderator(), reason="test"
        ),
    ):
        with pytest.raises(Exception) as err:
            call()
        texts += [str(err.value), repr(err.value)]
    box.faults()
    wrong = box.connect(api_key=SecretStr(api_key + "-wrong"))
    with pytest.raises(ConfigError) as err:
        wrong.find_user("cleo_marsh")
    texts += [str(err.value), repr(err.value)]
    headers, body = box.sandbox.signed_request(kind="ping", payload={"ping": "OK"})
    with pytest.raises(InvalidSignature) as bad:
        good.verify(headers={**headers, "X-Discourse-Event-Signature": "sha256=00"}, body=body)
    texts += [str(bad.value), repr(bad.value)]
    everything = "\n".join(texts) + caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert "grant" in caplog.text or "503" in caplog.text  # something was logged at all
    assert api_key not in everything and hook not in everything


def test_sandbox_control_routes_validate_their_input_and_expose_state(discourse):
    for bad in (
        {"error_rate": 2},
        {"error_status": 404},
        {"drop_phase": "sometimes"},
        {"explode": True},
        {"storm": 3},
        {"latency": -1},
    ):
        response = httpx.post(f"{discourse.url}/_sandbox/faults", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error_type"] == "invalid_parameters"
    assert discourse.faults(error_rate=0.5, seed=1)["faults"] == {"error_rate": 0.5, "seed": 1}
    assert discourse.faults()["faults"] == {}
    state = discourse.state()
    for key in (
        "users",
        "groups",
        "categories",
        "topics",
        "posts",
        "polls",
        "role_changes",
        "requests",
        "rate_limited",
        "webhook_deliveries",
        "pending_admin_confirmations",
        "faults",
        "settings",
    ):
        assert key in state
    assert state["settings"]["admin_api_limit"] == 60 and state["settings"]["admin_api_window"] == 60
    assert "/_sandbox" not in " ".join(state["requests"])  # control routes are not counted
    reset = httpx.post(f"{discourse.url}/_sandbox/reset")
    assert reset.status_code == 200


def test_webhook_instance_is_the_sites_host_and_a_known_site_refuses_another():
    body = b'{"topic":{"id":5,"title":"A topic","created_by":{"username":"cleo_marsh"}}}'
    headers = {
        "X-Discourse-Event-Id": "41",
        "X-Discourse-Event": "topic_created",
        "X-Discourse-Instance": "https://Forum.Example.org/",
        "X-Discourse-Event-Signature": sign_body("s3cret-hook", body),
    }
    free = DiscourseWebhookVerifier(secret=SecretStr("s3cret-hook"))
    assert free.verify(headers=headers, body=body).instance == "forum.example.org"
    pinned = DiscourseWebhookVerifier(secret=SecretStr("s3cret-hook"), instance="forum.example.org")
    assert pinned.verify(headers=headers, body=body).dedupe_key == "discourse:forum.example.org:41"
    without = {k: v for k, v in headers.items() if k != "X-Discourse-Instance"}
    assert pinned.verify(headers=without, body=body).instance == "forum.example.org"
    # The header is not signed: a replay naming another site cannot make a new key.
    other = DiscourseWebhookVerifier(secret=SecretStr("s3cret-hook"), instance="other.example.org")
    with pytest.raises(InvalidSignature, match="another site") as info:
        other.verify(headers=headers, body=body)
    assert info.value.status == 400
    with pytest.raises(InvalidSignature, match="X-Discourse-Instance"):
        free.verify(headers=without, body=body)
    # A site configured with its default port: Discourse's header omits it (Discourse.base_url).
    configured = DiscourseWebhookVerifier(
        secret=SecretStr("s3cret-hook"), instance=url_instance("https://forum.example.org:443/")
    )
    assert configured.verify(headers=headers, body=body).dedupe_key == "discourse:forum.example.org:41"
    assert url_instance("http://forum.example.org:80") == "forum.example.org"
    assert url_instance("https://forum.example.org:8443") == "forum.example.org:8443"
