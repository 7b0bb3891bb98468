"""`charterflow demo`: one story driven through the public interfaces of a running `up`.

The story, each step waiting for its effect (the ledger or a sandbox's state) with a timeout:

1. **apply**: an invented applicant fills in the public form (``GET``/``POST /apply`` on the
   gateway, with its CSRF cookie), naming their Discord account;
2. **confirm**: they press **Confirm** in the Discord DM (the Discord sandbox's signed
   interaction, delivered to the gateway's ``/hooks/discord``);
3. **vote**: four WG members press **Yes** on the ballot in the WG's Discord thread; the fourth
   vote decides it (R-VOTE-EARLY) and the applicant is **onboarded** (``wg-member`` granted);
4. **moderator**: a WG member is made a Discord moderator through the ``roles-change/operator``
   deployment (R-MOD), started with Prefect's REST API;
5. **propose**: the Chair proposes a platform trial with Discord ``/propose``; the WG endorses it
   on Discord, it is escalated to the Board's Slack channel, and a Board member presses
   **Approve** (a signed Slack ``block_actions`` request to the gateway's ``/hooks/slack``);
6. **appoint**: the ``wg-roles-ask-board/operator`` deployment asks the Board to name another
   Board member as the WG's Board Liaison (R-ROLE-BOARD checked first), and a Board member
   presses **Approve** in Slack; the appointment is recorded, then announced (R-ROLE-APPOINT);
7. **idea**: a community member files an idea with Discord ``/idea``, and the
   ``ideas-triage/operator`` deployment triages the backlog;
8. **guides**: the ``guides-publish/operator`` deployment publishes the community guides (R-GUIDE);
9. **report**: a member writes in ``#general`` and another reports it with Discord's message
   command **Report to moderators**; the report is taken once and shown in the moderators' room
   with Claim / Resolve buttons (R-SAFE-1); then a moderator writes in the Discord moderators'
   channel and the ``commons-poll`` deployment relays it to the Forum (R-COMMS), each linked in
   the inspector (its Reports page lists both);
10. then each installed connector plugin's steps (:func:`plugin_steps`): with Matrix under `up`,
   the Chair links their Matrix account (``!link``, the code from a Discord DM), the trial the
   Board just approved being served.

Each step prints the Prefect UI links of the flow runs it caused and of the gateway's inbox task
runs that handled its events. A step whose capability is
missing (no handler for its route, no deployment of that name) fails at once, naming what is
missing; a step whose effect does not show within its timeout fails naming the step. The exit
code is 0 only when every step happened.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from charterflow.seed import Person, build
from charterflow.stack import process_alive
from connectors.slack.blocks import ACTION_IDS, BoardDecision
from ledger import guides as shelf_ledger
from ledger import repo
from ledger.db import Ledger
from ledger.models import (
    Application,
    Ballot,
    BallotElector,
    BallotStatus,
    Identity,
    InboxEvent,
    Proposal,
    ProposalStatus,
)
from ledger.models_appointments import WgAppointment
from ledger.models_commons import CommonsMessage
from ledger.models_safety import SafetyReport

__all__ = ["DemoFailed", "Demo", "find_stack", "run_demo"]

STEP_TIMEOUT = 120.0
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class DemoFailed(Exception):
    """A step did not happen; ``str()`` names the step and what was missing."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"step '{step}' did not happen: {reason}")
        self.step = step


def find_stack(home: Path) -> dict[str, Any]:
    """The running `up`'s lock file (``$CHARTERFLOW_HOME/up.json``); ``DemoFailed`` when none."""
    path = home / "up.json"
    try:
        lock = json.loads(path.read_text())
    except (OSError, ValueError):
        raise DemoFailed(
            "find the stack",
            f"no running `charterflow up` found ({path} is missing); start it first, with the same CHARTERFLOW_HOME",
        ) from None
    if not isinstance(lock.get("pid"), int) or not process_alive(lock["pid"]):
        raise DemoFailed("find the stack", f"the `charterflow up` recorded in {path} is not running")
    real = [p for p in ("discord", "discourse", "slack") if p not in (lock.get("sandboxes") or {})]
    if real:
        # Its people are the seeded community, which only a stack of sandboxes has.
        raise DemoFailed(
            "find the stack",
            f"the demo acts as invented people in the sandboxes, but {', '.join(real)} is not a sandbox here",
        )
    return lock


@dataclass
class Demo:
    """The story's state and its connections to the running stack."""

    lock: dict[str, Any]
    ledger_url: str
    say: Callable[[str], None] = print
    timeout: float = STEP_TIMEOUT
    runs: list[dict[str, Any]] = field(default_factory=list)
    task_runs: list[dict[str, Any]] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    def __post_init__(self) -> None:
        self.community = build()
        self.ledger = Ledger(self.ledger_url)
        self.api = self.lock["api_url"].rstrip("/")
        self.ui = self.lock["ui_url"].rstrip("/")
        self.gateway = self.lock["gateway_url"].rstrip("/")
        self.discord = self.lock["sandboxes"]["discord"]
        self.slack = self.lock["sandboxes"]["slack"]

    def close(self) -> None:
        """Close the ledger and the HTTP client."""
        self.ledger.dispose()
        self.http.close()

    # ---- helpers -----------------------------------------------------------------------------

    def read(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request that changes nothing (or is idempotent), tried again on a dropped
        connection or a 5xx: a busy Prefect server on SQLite answers 503 now and then."""
        attempts = 6
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.TransportError:
                if last:
                    raise
            else:
                if response.status_code < 500:
                    return response
                if last:
                    response.raise_for_status()
            time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    def state(self, platform: str) -> dict[str, Any]:
        """A sandbox's ``/_sandbox/state``."""
        response = self.read("GET", f"{self.lock['sandboxes'][platform]}/_sandbox/state")
        response.raise_for_status()
        return response.json()

    def wait(self, step: str, what: str, probe: Callable[[], Any]) -> Any:
        """Poll ``probe`` until it returns something truthy; ``DemoFailed`` after the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise DemoFailed(step, f"{what} (waited {self.timeout:g} s)")
            time.sleep(0.5)

    def interact(self, step: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a Discord interaction through the sandbox; ``DemoFailed`` when it was refused."""
        response = self.http.post(f"{self.discord}/_sandbox/interactions", json=body)
        if response.status_code != 200:
            raise DemoFailed(step, f"the Discord sandbox refused the interaction: {response.text[:300]}")
        outcome = response.json()
        if outcome.get("failed"):
            raise DemoFailed(step, f"the gateway did not accept the interaction: {outcome.get('error')}")
        return outcome

    def write_on_discord(self, step: str, user: str, channel: str, content: str) -> dict[str, Any]:
        """``user`` writes ``content`` in the Discord channel named ``channel``: the message."""
        response = self.http.post(
            f"{self.discord}/_sandbox/messages", json={"user": user, "channel": channel, "content": content}
        )
        if response.status_code != 200:
            raise DemoFailed(step, f"the Discord sandbox refused the message: {response.text[:300]}")
        return dict(response.json())

    def approve_in_slack(self, step: str, member: Person, message_ref: str, action_id: str) -> None:
        """``member`` presses the button ``action_id`` on the Board's Slack message
        ``message_ref`` (``channel:ts``): a signed ``block_actions`` request to the gateway."""
        channel, ts = message_ref.split(":", 1)
        response = self.http.post(
            f"{self.slack}/_sandbox/interact",
            json={
                "url": f"{self.gateway}/hooks/slack",
                "user": member.slack_id,
                "channel": channel,
                "ts": ts,
                "action_id": action_id,
            },
        )
        if response.status_code != 200 or response.json().get("status") != 200:
            raise DemoFailed(step, f"the Slack click was not accepted: {response.text[:300]}")
        self.say(f"      {member.name} pressed Approve in Slack")

    def flow_runs_since(self, since: datetime) -> list[dict[str, Any]]:
        """Flow runs started at or after ``since``."""
        # Runs of this step; not the runs the schedules create ahead of time.
        body = {
            "flow_runs": {
                "expected_start_time": {"after_": since.isoformat(), "before_": datetime.now(UTC).isoformat()}
            },
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 200,
        }
        response = self.read("POST", f"{self.api}/flow_runs/filter", json=body)
        response.raise_for_status()
        return response.json()

    def inbox_runs_since(self, since: datetime) -> list[dict[str, Any]]:
        """The gateway's inbox task runs started at or after ``since``."""
        body = {
            "task_runs": {
                "expected_start_time": {"after_": since.isoformat(), "before_": datetime.now(UTC).isoformat()},
                "name": {"like_": "inbox-"},
            },
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 200,
        }
        response = self.read("POST", f"{self.api}/task_runs/filter", json=body)
        response.raise_for_status()
        return response.json()

    def report_runs(self, since: datetime) -> None:
        """Print the flow runs started in this step, and the inbox task runs that handled its
        platform events, with their Prefect UI links."""
        seen = {r["id"] for r in self.runs} | {r["id"] for r in self.task_runs}
        for run in self.inbox_runs_since(since):
            if run["id"] not in seen and "unknown" not in run["name"]:
                self.task_runs.append({"id": run["id"], "name": run["name"]})
                self.say(f"      task run {run['name']:<34} {self.ui}/runs/task-run/{run['id']}")
        for run in self.flow_runs_since(since):
            if run["id"] in seen or run.get("auto_scheduled"):
                continue
            self.runs.append({"id": run["id"], "name": run["name"]})
            self.say(f"      flow run {run['name']:<34} {self.ui}/runs/flow-run/{run['id']}")

    def deployment(self, step: str, name: str) -> dict[str, Any]:
        """The deployment ``flow/name``; ``DemoFailed`` when the runner does not serve it."""
        response = self.read("GET", f"{self.api}/deployments/name/{name}")
        if response.status_code == 404:
            raise DemoFailed(
                step, f"no deployment named {name!r} is served (that capability is not installed in this version)"
            )
        response.raise_for_status()
        return response.json()

    def run_deployment(self, step: str, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """Start a run of deployment ``name`` and wait until it ends; ``DemoFailed`` unless it
        completed."""
        deployment = self.deployment(step, name)
        # The idempotency key makes a retried start the same run.
        response = self.read(
            "POST",
            f"{self.api}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": parameters, "idempotency_key": f"demo-{step}-{time.time_ns()}"},
        )
        response.raise_for_status()
        run = response.json()

        def ended() -> dict[str, Any] | None:
            current = self.read("GET", f"{self.api}/flow_runs/{run['id']}").json()
            return current if (current.get("state") or {}).get("type") in TERMINAL else None

        final = self.wait(step, f"the {name} run {run['name']} did not finish", ended)
        if final["state"]["type"] != "COMPLETED":
            raise DemoFailed(
                step,
                f"the {name} run ended {final['state']['type']}: "
                f"{final['state'].get('message') or ''} ({self.ui}/runs/flow-run/{run['id']})",
            )
        return final

    def _effect(self, key: str) -> dict[str, Any] | None:
        with self.ledger.read() as session:
            found = repo.effect_get(session, key=key)
            return dict(found["ref"]) if found else None

    def electors(self, ballot_id: int) -> list[str]:
        """The Discord usernames of the ballot's electorate, in person order."""
        with self.ledger.read() as session:
            rows = session.execute(
                select(Identity.username)
                .join(BallotElector, BallotElector.person_id == Identity.person_id)
                .where(BallotElector.ballot_id == ballot_id, Identity.platform == "discord")
                .order_by(Identity.person_id)
            )
            return [name for (name,) in rows if name]

    def vote_yes(self, step: str, ballot_id: int) -> None:
        """Press Yes on the Discord ballot ``ballot_id`` as just enough electors to decide it
        (a majority of the whole electorate: R-VOTE-EARLY closes it then)."""
        from flows.membership import ballot as ballots  # lazy: start-up: Prefect, for the voting steps only

        electors = self.electors(ballot_id)
        voters = electors[: len(electors) // 2 + 1]

        ref = self.wait(
            step,
            f"ballot {ballot_id} was not posted on Discord",
            lambda: self._effect(f"ballot:{ballot_id}:post:discord"),
        )
        index = next(i for i, o in enumerate(ref["options"]) if ballots.choice_of(ref, str(o["id"])) == "yes")
        for voter in voters:
            self.interact(
                step,
                {
                    "type": "component",
                    "user": voter,
                    "channel_id": str(ref["thread_id"]),
                    "message_id": str(ref["message_id"]),
                    "option_index": index,
                },
            )
            self.say(f"      {voter} pressed Yes")

    def _ballot_closed(self, ballot_id: int) -> bool:
        with self.ledger.read() as session:
            ballot = session.get(Ballot, ballot_id)
            return ballot is not None and ballot.status != BallotStatus.OPEN

    # ---- the steps ---------------------------------------------------------------------------

    def applicant(self) -> Person:
        """The first invented applicant the ledger does not know yet."""
        with self.ledger.read() as session:
            for person in self.community.applicants():
                if repo.find_identity(session, platform="discord", username=person.discord_member["username"]) is None:
                    return person
        raise DemoFailed("apply", "every invented applicant has applied already; start from a fresh CHARTERFLOW_HOME")

    def step_apply(self, person: Person) -> None:
        step = "apply"
        form = self.read("GET", f"{self.gateway}/apply")
        hidden = dict(re.findall(r'name="(submission|csrf)" value="([^"]*)"', form.text))
        if form.status_code != 200 or len(hidden) != 2:
            raise DemoFailed(step, f"the application form did not load (HTTP {form.status_code})")
        answer = self.http.post(
            f"{self.gateway}/apply",
            data={
                **hidden,
                "discord_username": person.discord_member["username"],
                "discourse_username": "",
                "why": "I welcome newcomers in #general most evenings and would like to help the "
                "working group keep the community friendly.",
                "experience": "Two years moderating a regional user group chat.",
                "nominator": "",
                "email": "",
            },
            cookies=form.cookies,
        )
        if answer.status_code != 200:
            raise DemoFailed(step, f"the gateway answered HTTP {answer.status_code} to the form")
        self.say(f"      {person.name} applied as {person.discord_member['username']} on Discord")

    def confirm_dm(self, person: Person) -> dict[str, Any] | None:
        state = self.state("discord")
        dm = {c["id"] for c in state["channels"] if c.get("recipient_id") == person.discord_member["id"]}
        for message in reversed(state["messages"]):
            if message["channel_id"] in dm:
                for row in message["components"]:
                    for button in row.get("components", []):
                        if str(button.get("custom_id", "")).startswith("cfc:") and not button.get("disabled"):
                            return {"message": message, "custom_id": button["custom_id"]}
        return None

    def application(self, person: Person) -> Any:
        with self.ledger.read() as session:
            identity = repo.find_identity(session, platform="discord", username=person.discord_member["username"])
            if identity is None:
                return None
            return session.scalars(
                select(Application).where(Application.person_id == identity.person_id).order_by(Application.id.desc())
            ).first()

    def step_confirm(self, person: Person) -> int:
        step = "confirm"
        found = self.wait(
            step, "no confirmation DM with a Confirm button reached the applicant", lambda: self.confirm_dm(person)
        )
        message = found["message"]
        self.interact(
            step,
            {
                "type": "component",
                "user": person.discord_member["username"],
                "channel_id": message["channel_id"],
                "message_id": message["id"],
                "custom_id": found["custom_id"],
            },
        )
        self.say(f"      {person.discord_member['username']} pressed Confirm in the DM")
        app = self.wait(
            step,
            "the application did not reach its ballot (eligibility, R-ELIG-1)",
            lambda: (lambda a: a if a is not None and a.ballot_id else None)(self.application(person)),
        )
        self.say(f"      eligible; approval ballot {app.ballot_id} is open")
        return app.ballot_id

    def step_vote(self, person: Person, ballot_id: int) -> None:
        step = "vote and onboard"
        self.vote_yes(step, ballot_id)

        def onboarded() -> bool:
            changes = self.state("discord")["role_changes"]
            return any(
                c["action"] == "grant" and c["user_id"] == person.discord_member["id"] and c["role"] == "wg-member"
                for c in changes
            )

        self.wait(step, "the ballot did not close passed", lambda: self._ballot_closed(ballot_id))
        self.wait(step, f"{person.discord_member['username']} was not given the wg-member role on Discord", onboarded)
        self.say(f"      ballot {ballot_id} passed; {person.discord_member['username']} is onboarded (wg-member)")

    def step_moderator(self) -> None:
        step = "add a moderator"
        members = {m["id"]: set(m["roles"]) for m in self.state("discord")["members"]}
        person = next(
            (
                p
                for p in self.community.wg
                if p.discord and not members.get(p.discord["id"], set()) & {"moderator", "admin"}
            ),
            None,
        )
        if person is None:
            raise DemoFailed(step, "every WG member is a Discord moderator or admin already")
        self.run_deployment(
            step,
            "roles-change/operator",
            {
                "action": "grant",
                "role": "moderator",
                "platform": "discord",
                "person": person.handle,
                "reason": "Covers the evening hours in #general (demo).",
            },
        )

        def granted() -> bool:
            return any(
                c["action"] == "grant" and c["user_id"] == person.discord_member["id"] and c["role"] == "moderator"
                for c in self.state("discord")["role_changes"]
            )

        self.wait(step, f"{person.discord_member['username']} did not become a Discord moderator", granted)
        self.say(f"      {person.handle} is a moderator on Discord (R-MOD)")

    def proposal(self, title: str) -> Any:
        with self.ledger.read() as session:
            return session.scalars(select(Proposal).where(Proposal.title == title).order_by(Proposal.id.desc())).first()

    def step_propose(self, title: str) -> None:
        step = "propose and escalate"
        chair = self.community.person(self.community.wg_roles["chair"])
        self.interact(
            step,
            {
                "type": "command",
                "user": chair.discord_member["username"],
                "name": "propose",
                "options": {
                    "kind": "trial-platform",
                    "title": title,
                    "platform": "matrix",
                    "summary": "Trial a self-hosted chat bridge for three months "
                    "so Forum-only members can join live events.",
                },
            },
        )
        self.say(f"      {chair.discord_member['username']} ran /propose (trial-platform)")
        proposal = self.wait(
            step,
            "the proposal was not recorded with an endorsement ballot",
            lambda: (
                lambda p: (
                    p if p is not None and (p.endorsement_ballot_id or p.status == ProposalStatus.ESCALATED) else None
                )
            )(self.proposal(title)),
        )
        if proposal.status != ProposalStatus.ESCALATED:
            self.vote_yes(step, proposal.endorsement_ballot_id)
        escalated = self.wait(
            step,
            "the proposal was not escalated to the Board's Slack channel",
            lambda: (
                lambda p: (
                    p
                    if p.escalation_ref
                    and ":" in p.escalation_ref
                    and not p.escalation_ref.startswith("board-escalation")
                    else None
                )
            )(self.proposal(title)),
        )
        self.say(f"      endorsed by the WG; escalated to Slack ({escalated.escalation_ref})")

    def step_board(self, title: str) -> None:
        step = "Board decision"
        proposal = self.proposal(title)
        self.approve_in_slack(
            step, self.community.board[-1], proposal.escalation_ref, ACTION_IDS[BoardDecision.APPROVE]
        )
        self.wait(
            step,
            "the Board's decision was not recorded",
            lambda: (lambda p: p.decision is not None)(self.proposal(title)),
        )
        self.say(f"      proposal {proposal.id}: {self.proposal(title).decision.value} by the Board")

    def step_appoint(self) -> None:
        """R-ROLE-APPOINT: the WG asks the Board to name another Board member as Board Liaison
        (checked against R-ROLE-BOARD first); a Board member approves in Slack."""
        step = "appoint the Board Liaison"
        holder = self.community.wg_roles["board_liaison"]
        nominee, member = [p for p in self.community.board if p.handle != holder][:2]
        self.run_deployment(step, "wg-roles-ask-board/operator", {"nominee": nominee.handle, "requested_by": "demo"})

        def asked() -> Any:
            with self.ledger.read() as session:
                row = session.scalars(
                    select(WgAppointment).where(WgAppointment.role == "board_liaison").order_by(WgAppointment.id.desc())
                ).first()
                return row if row is not None and row.message_ref else None

        row = self.wait(step, "the Board was not asked in Slack", asked)
        self.say(f"      the Board was asked to name {nominee.handle} (R-ROLE-BOARD checked)")
        self.approve_in_slack(step, member, row.message_ref, "board_approve")
        self.wait(
            step,
            f"{nominee.handle} was not appointed",
            lambda: (lambda r: r if r.status == "appointed" else None)(asked()),
        )
        self.say(f"      {nominee.handle} is the Board Liaison; the WG was told (R-ROLE-APPOINT)")

    def _last_inbox_id(self) -> int:
        with self.ledger.read() as session:
            return int(session.scalar(select(func.max(InboxEvent.id))) or 0)

    def step_idea(self, text: str) -> None:
        from flows import inbox  # lazy: start-up: Prefect and every flow, for this step only

        step = "file and triage an idea"
        if inbox.HANDLERS.get(inbox.Route.IDEA) is None:
            raise DemoFailed(
                step,
                "no handler is registered for the inbox route 'idea' (the ideas "
                "capability is not installed in this version)",
            )
        self.deployment(step, "ideas-triage/operator")
        author = self.community.applicants()[-1]
        before = self._last_inbox_id()
        self.interact(
            step,
            {"type": "command", "user": author.discord_member["username"], "name": "idea", "options": {"text": text}},
        )
        self.say(f"      {author.discord_member['username']} ran /idea")

        def filed() -> str | None:
            with self.ledger.read() as session:
                event = session.scalars(
                    select(InboxEvent).where(InboxEvent.route == inbox.Route.IDEA, InboxEvent.id > before)
                ).first()
                return event.result_ref if event is not None and event.processed_at else None

        result = self.wait(step, "the idea was not filed in the backlog", filed)
        self.say(f"      filed ({result})")
        self.run_deployment(step, "ideas-triage/operator", {})
        self.say("      the backlog was triaged")

    def step_report(self, stamp: str) -> None:
        """R-SAFE-1: a member writes in #general; another picks "Report to moderators" in the
        message's Apps menu; the report is taken once and shown in the moderators' room."""
        step = "report a message to the moderators"
        writer, reporter = (p.discord_member["username"] for p in self.community.applicants()[-2:])
        with self.ledger.read() as session:
            before = int(session.scalar(select(func.max(SafetyReport.id))) or 0)
        written = self.write_on_discord(
            step, writer, "general", f"Nobody asked you, and nobody here wants your answers. ({stamp})"
        )
        self.interact(
            step,
            {
                "type": "message_command",
                "user": reporter,
                "name": "Report to moderators",
                "message_id": written["id"],
            },
        )
        self.say(f"      {reporter} reported a message of {writer} (the message's Apps menu)")

        def taken() -> str | None:
            with self.ledger.read() as session:
                row = session.scalars(select(SafetyReport).where(SafetyReport.id > before)).first()
                return f"report #{row.id} ({row.state})" if row is not None else None

        self.say(
            f"      {self.wait(step, 'the report did not reach the queue', taken)}: shown in the "
            "moderators' room with Claim / Resolve buttons; the inspector's Discord page shows it"
        )
        self.step_commons(stamp)

    def step_commons(self, stamp: str) -> None:
        """R-COMMS: a moderator writes in the Discord moderators' channel; the ``commons-poll``
        deployment relays it to the Forum's Moderators category (its first run of a room starts
        at the newest message, so it runs before the message and after it)."""
        step = "relay the moderators' channel to the Forum"
        self.run_deployment(step, "commons-poll/every-minute", {})
        moderator = self.community.moderators("discord")[0].discord_member["username"]
        written = self.write_on_discord(
            step, moderator, "moderators", f"I am looking at the new report; please leave it to me. ({stamp})"
        )
        self.run_deployment(step, "commons-poll/every-minute", {})

        def relayed() -> str | None:
            with self.ledger.read() as session:
                source = session.scalar(
                    select(CommonsMessage).where(
                        CommonsMessage.platform == "discord", CommonsMessage.message_id == str(written["id"])
                    )
                )
                copy = (
                    None
                    if source is None
                    else session.scalar(
                        select(CommonsMessage).where(
                            CommonsMessage.origin_id == source.id, CommonsMessage.platform == "discourse"
                        )
                    )
                )
                return copy.thread_id if copy is not None and copy.thread_id else None

        topic = self.wait(step, "the message was not relayed to the Forum", relayed)
        inspector = self.lock.get("inspector_url")
        self.say(
            f"      {moderator} wrote in Discord's #moderators ({inspector}/discord?channel="
            f"{written['channel_id']}); relayed to the Forum's Moderators category "
            f"({inspector}/forum?topic={topic}); reports and relays: {inspector}/reports"
        )

    def step_guides(self) -> None:
        # The seeded sandboxes have no Guides category or resources channel: their general ones.
        self.run_deployment(
            "publish the guides",
            "guides-publish/operator",
            {"channels": {"discourse": "General", "discord": "general"}},
        )
        with self.ledger.read() as session:
            for post in shelf_ledger.posts(session):
                self.say(f"      {post.slug} on {post.platform} (version {post.version}): {post.url}")


def plugin_steps(demo: Demo, group: str = "charterflow.demo") -> list[tuple[str, Callable[[], Any]]]:
    """Steps connector plugins add after the story (entry-point group ``charterflow.demo``:
    ``steps(demo) -> [(label, act)]``, none when the plugin is not configured here; Matrix
    links a member's account once the Board approved its trial). One that fails to load is
    said and left out."""
    found: list[tuple[str, Callable[[], Any]]] = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            found += list(ep.load()(demo))
        except Exception as exc:  # noqa: BLE001 - a broken plugin does not stop the story
            demo.say(f"warning: the {ep.name} plugin's demo steps cannot load ({type(exc).__name__})")
    return found


def run_demo(
    *, home: Path, ledger_url: str, say: Callable[[str], None] = print, timeout: float = STEP_TIMEOUT
) -> list[dict[str, Any]]:
    """Drive the story (see the module docstring); the flow and task runs it caused. Raises
    ``DemoFailed`` naming the first step that did not happen."""
    lock = find_stack(home)
    demo = Demo(lock=lock, ledger_url=ledger_url, say=say, timeout=timeout)
    stamp = datetime.now(UTC).strftime("%H%M%S")
    title = f"Trial a chat bridge for live events ({stamp})"
    try:
        person = demo.applicant()
        steps: list[tuple[str, Callable[[], Any]]] = []
        ballot: dict[str, int] = {}
        steps = [
            ("An applicant applies through the form", lambda: demo.step_apply(person)),
            ("They confirm on Discord", lambda: ballot.update(id=demo.step_confirm(person))),
            ("Members vote with buttons; the applicant is onboarded", lambda: demo.step_vote(person, ballot["id"])),
            ("A moderator is added", demo.step_moderator),
            ("A platform trial is proposed and escalated", lambda: demo.step_propose(title)),
            ("A Board member approves it in Slack", lambda: demo.step_board(title)),
            ("The Board names its Liaison to the WG in Slack", demo.step_appoint),
            (
                "An idea is filed and triaged",
                lambda: demo.step_idea(f"A monthly 'meet the moderators' thread ({stamp})"),
            ),
            ("The community guides are published (R-GUIDE)", demo.step_guides),
            ("A member reports a message to the moderators (R-SAFE-1)", lambda: demo.step_report(stamp)),
            *plugin_steps(demo),
        ]
        for number, (label, act) in enumerate(steps, start=1):
            # Start times are second-precise in the filter: a small margin keeps the step's runs.
            since = datetime.now(UTC) - timedelta(seconds=1)
            say(f"{number}. {label}")
            act()
            demo.report_runs(since)
        say(f"Done. Explore it in the Prefect UI ({demo.ui}) and the inspector ({lock.get('inspector_url')}).")
        return demo.runs + demo.task_runs
    finally:
        demo.close()
