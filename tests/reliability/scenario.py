"""The full lifecycle the reliability suite runs twice (without faults, then with): a removal, two
Board escalations, 30 applications with their ballots and onboarding, ideas, and the renewals a
year later. Time moves through the flows' ``now`` parameters, as the flow tests do.

Every step is what a person or a schedule would do: a flow run, a button pressed on Discord or
Slack (a signed interaction through the real gateway, then the inbox handler), a vote on the Forum
poll. A step that raises is run again, as Prefect's schedule or the operator would (every flow is
safe to re-run); how many re-runs were needed is reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from flows import inbox
from flows.board.decision import record_decision
from flows.board.escalation import board_escalation
from flows.kit import context
from flows.membership import ballot as ballots
from flows.membership.ballot import close_due_ballots
from flows.membership.removal import open_removal_ballot
from flows.membership.renewal import opt_in, renewal
from ledger.models import Application, Ballot, InboxEvent, Membership, Person, Proposal
from tests.reliability.world import APPLICANTS, Stack
from tests.support.board import BOARD_CHANNEL, WREN
from tests.support.membership import END_OF_FIRST_TERM, NOW, apply_proven

log = logging.getLogger("charterflow.tests.reliability")

MAX_RUNS = 5  # a step is run at most this often (the first run and four re-runs)

# Fault profiles, cycled over the steps: 10% 5xx everywhere, 5% dropped connections (before and
# after the request took effect, alternating), a 429 storm (3 answers) every eighth step, and 2 s
# latency on the few steps marked ``spike`` (every request of a step pays it: kept to small steps).
BASE_FAULTS = {"error_rate": 0.1, "error_status": 503, "drop_rate": 0.05}


def fault_profile(n: int, *, spike: bool) -> dict[str, Any]:
    faults: dict[str, Any] = {**BASE_FAULTS, "drop_phase": "after" if n % 2 else "before", "seed": 1000 + n}
    if n % 8 == 0:
        faults["storm"] = {"count": 3, "retry_after": 1}
    if spike:
        faults["latency"] = 2.0
    return faults


@dataclass
class Run:
    """What one run of the lifecycle did."""

    faults: bool
    steps: int = 0
    reruns: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class Lifecycle:
    def __init__(
        self,
        stack: Stack,
        *,
        faults: bool,
        applicants: list[str] | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.stack = stack
        self.world = stack.world
        self.run = Run(faults=faults)
        self.applicants = applicants or APPLICANTS
        self.on_step = on_step

    # -- machinery ---------------------------------------------------------------------------

    def step(self, name: str, fn: Callable[[], Any], *, spike: bool = False, person: bool = False) -> Any:
        """Run ``fn`` under this step's faults; run it again if it raised. ``person``: a member
        acting on the platform directly (a Forum poll vote), not our system: no faults."""
        n = self.run.steps
        self.run.steps += 1
        began = time.monotonic()
        kind = name.split(" ")[0]
        if self.on_step is not None:
            self.on_step(name)
        faulted = self.run.faults and not person
        if faulted:
            self.stack.set_faults(fault_profile(n, spike=spike))
        try:
            for attempt in range(1, MAX_RUNS + 1):
                try:
                    return fn()
                except Exception as exc:  # re-run as the schedule/operator would
                    if attempt == MAX_RUNS:
                        raise
                    self.run.reruns.append(f"{name}: {type(exc).__name__}")
                    log.warning("reliability: %s raised %s; running it again", name, type(exc).__name__)
                    time.sleep(attempt)
        finally:
            self.run.timings[kind] = round(self.run.timings.get(kind, 0.0) + time.monotonic() - began, 1)
            if faulted:
                self.stack.set_faults({})

    def last_event(self, route: str) -> int:
        with self.world.ledger.read() as session:
            return session.scalars(
                select(InboxEvent.id).where(InboxEvent.route == route).order_by(InboxEvent.id.desc())
            ).first()

    def press(self, ref: dict[str, Any], user: str, option: int) -> str:
        """``user`` presses ballot button ``option`` on Discord: the sandbox POSTs the signed
        interaction to the gateway, which stores it; the inbox handler then runs it."""
        before = self.last_event(inbox.Route.VOTE)
        answer = self.stack.http.post(
            f"{self.world.discord_url}/_sandbox/interactions",
            timeout=60,
            json={
                "type": "component",
                "user": user,
                "message_id": ref["message_id"],
                "channel_id": ref["thread_id"],
                "custom_id": f"cfb:{ref['ballot_id']}:{option}",
            },
        )
        assert answer.status_code == 200, answer.text
        event = self.last_event(inbox.Route.VOTE)
        assert event is not None and event != before, "the gateway did not store the vote"
        return self.step(f"vote {user}", lambda: inbox.handle_event(self.world.ledger, event))

    def forum_vote(self, ballot_id: int, voter: str, option: int) -> None:
        ref = ballots.refs(context(NOW), ballot_id)["discourse"]
        self.world.discourse_sb.cast_vote(
            self.world.discourse_url, ballots.platform_ballot("discourse", ref), voter=voter, option_index=option
        )

    def refs(self, ballot_id: int) -> dict[str, dict[str, Any]]:
        return ballots.refs(context(NOW), ballot_id)

    # -- the scenario ------------------------------------------------------------------------

    def removal(self) -> None:
        opened = self.step(
            "removal ballot", lambda: open_removal_ballot(member="hana_pike", proposed_by="avery_quill", now=NOW)
        )
        where = self.refs(opened["ballot"])
        results = [
            self.press(where["discord"], voter, 0)
            for voter in ("cleo_marsh", "dario_fenwick", "avery_quill", "bram_tolliver")
        ]
        self.run.results["removal"] = {"electorate": opened["electorate"], "votes": results}

    def escalations(self) -> None:
        at = NOW + timedelta(minutes=30)
        first = self.step(
            "escalation 1",
            lambda: board_escalation(
                kind="budget",
                title="Forum search upgrade",
                summary="A hosted search index.",
                amount=Decimal("1200"),
                currency="EUR",
                purpose="six months of hosting",
                links=["https://forum.example.org/t/search/123"],
                proposed_by="avery_quill",
                now=at,
            ),
        )
        second = self.step(
            "escalation 2",
            lambda: board_escalation(
                kind="trial-platform",
                title="Try a wiki",
                summary="A wiki for the moderation guides.",
                platform="wiki",
                proposed_by="cleo_marsh",
                now=at,
            ),
        )
        for proposal in (first, second):
            for voter in ("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick"):
                self.step(
                    f"endorse {voter}", lambda p=proposal, v=voter: self.forum_vote(p["ballot"], v, 0), person=True
                )
        up = [
            self.step(
                f"escalate {p['proposal']}",
                lambda p=p: board_escalation(proposal_id=p["proposal"], now=at + timedelta(hours=1)),
            )
            for p in (first, second)
        ]
        # The Board approves the first in Slack (a signed click through the gateway).
        with self.world.ledger.read() as session:
            channel, ts = session.get(Proposal, first["proposal"]).escalation_ref.split(":")
        assert channel == BOARD_CHANNEL
        payload = self.stack.slack_sb.block_actions_payload(
            self.stack.slack_url, user=WREN, channel=BOARD_CHANNEL, ts=ts, action_id="board_approve"
        )
        headers, body = self.stack.slack_sb.signed_request(kind="block_actions", payload=payload)
        answer = self.stack.http.post(f"{self.stack.gateway_url}/hooks/slack", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        event = self.last_event(inbox.Route.BOARD_DECISION)
        decided = self.step("board click", lambda: inbox.handle_event(self.world.ledger, event), spike=True)
        # The second is rejected in a Board meeting; the operator records it.
        rejected = self.step(
            "operator decision",
            lambda: record_decision(
                proposal_id=second["proposal"],
                decision="rejected",
                decided_by="wren_halloway",
                note="Not before the next budget year.",
                now=at + timedelta(days=3),
            ),
        )
        self.run.results["escalations"] = {
            "escalated": [u["status"] for u in up],
            "decisions": [decided, rejected["result"]],
        }

    def applications(self) -> None:
        at = NOW + timedelta(hours=1)
        ballot_of: dict[str, int] = {}

        def filed(name: str) -> int:
            # The ballot is read inside the step: a fault (a database restarting) may outlast the
            # intake itself, and then the read is run again with it, as a client would.
            result = apply_proven(self.world, name, discord=True, now=at)
            with self.world.ledger.read() as session:
                return session.get(Application, result["application"]).ballot_id

        for name in self.applicants:
            ballot_of[name] = self.step(f"apply {name}", lambda n=name: filed(n))
        # Every applicant but the last gets 4 yes (2 on Discord, 2 on the Forum), the last 4 no.
        for name in self.applicants:
            option = 1 if name == self.applicants[-1] else 0
            where = self.refs(ballot_of[name])
            for voter in ("cleo_marsh", "dario_fenwick"):
                self.press(where["discord"], voter, option)
            for voter in ("avery_quill", "bram_tolliver"):
                self.step(
                    f"forum vote {voter}",
                    lambda b=ballot_of[name], v=voter, o=option: self.forum_vote(b, v, o),
                    person=True,
                )
        closed = self.step("close ballots", lambda: close_due_ballots(now=NOW + timedelta(hours=2)))
        # A re-run of the closer (every 5 minutes in production) finishes what a fault cut short.
        self.step("close ballots again", lambda: close_due_ballots(now=NOW + timedelta(hours=2, minutes=5)))
        outcomes = sorted(c["outcome"] for c in closed if c.get("ballot") in ballot_of.values())
        self.run.results["applications"] = {"outcomes": outcomes}

    def ideas(self) -> None:
        stored = []
        for n, title in enumerate(
            ["A weekly newcomers' thread", "Office hours on Discord", "A glossary for the Forum"]
        ):
            headers, body = self.world.discourse_sb.signed_request(
                kind="topic_created",
                payload={
                    "topic": {
                        "id": 9000 + n,
                        "title": title,
                        "category_id": int(self.stack.ideas_category),
                        "archetype": "regular",
                        "created_by": {"id": 2 + n, "username": APPLICANTS[n]},
                    }
                },
            )
            answer = self.stack.http.post(f"{self.stack.gateway_url}/hooks/discourse", content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            stored.append(self.last_event(inbox.Route.IDEA))
        handled = None
        if inbox.Route.IDEA in inbox.HANDLERS:
            handled = [self.step("idea", lambda e=e: inbox.handle_event(self.world.ledger, e)) for e in stored]
        self.run.results["ideas"] = {"stored": len(set(stored)), "handled": handled}

    def renewals(self) -> None:
        # The seven founders' first term ends; all but gale_morrow opt in (hana_pike was removed).
        before_end = END_OF_FIRST_TERM - timedelta(days=20)
        for i, name in enumerate(("avery_quill", "bram_tolliver", "cleo_marsh", "dario_fenwick", "felix_oakes")):
            self.step(f"opt-in {name}", lambda n=name: opt_in(member=n, now=before_end), spike=i == 0)
        first = self.step("renewal founders", lambda: renewal(now=END_OF_FIRST_TERM + timedelta(days=8)))
        # The applicants' first term ends a year after their ballot closed.
        with self.world.ledger.read() as session:
            ends = sorted(
                {
                    t.ends_at
                    for m in session.scalars(select(Membership))
                    for t in m.terms
                    if t.approved_by_ballot_id is not None
                }
            )
        new_end = ends[-1]
        reminded = self.step("renewal reminders", lambda: renewal(now=new_end - timedelta(days=30, hours=-1)))
        with self.world.ledger.read() as session:
            onboarded = sorted(
                p.handle for p in session.scalars(select(Person)) if p.handle in self.applicants and p.memberships
            )
        for name in onboarded[:-3]:
            self.step(f"opt-in {name}", lambda n=name: opt_in(member=n, now=new_end - timedelta(days=10)))
        last = self.step("renewal lapses", lambda: renewal(now=new_end + timedelta(days=8)))
        self.run.results["renewals"] = {
            "founders lapsed": sorted(first["lapsed"]),
            "reminded": len(reminded["reminded"]),
            "lapsed": sorted(last["lapsed"]),
        }

    def play(self) -> Run:
        started = time.monotonic()
        for phase in (self.removal, self.escalations, self.applications, self.ideas, self.renewals):
            began = time.monotonic()
            phase()
            self.run.phases[phase.__name__] = round(time.monotonic() - began, 1)
            log.warning(
                "reliability: %s run, %s done in %.1f s",
                "faulted" if self.run.faults else "clean",
                phase.__name__,
                time.monotonic() - began,
            )
        self.run.seconds = time.monotonic() - started
        return self.run


def ballots_of(stack: Stack) -> list[Ballot]:
    with stack.world.ledger.read() as session:
        return list(session.scalars(select(Ballot).order_by(Ballot.id)))
