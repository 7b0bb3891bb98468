"""Chaos: `charterflow up` on its sandboxes while members keep filing ideas (Discord ``/idea``
interactions, signed by the Discord sandbox; new Forum topics in the Ideas category, whose
``topic_created`` webhooks the Forum sandbox signs and sends), and each child of `up` is
SIGKILLed in turn: the gateway, the workers (the inbox task worker and the runner, one
process), the sandboxes (with the inspector), the Prefect server.

`up` restarts each (it never stops), and at the end every acknowledged event was handled once
and each of its effects on the platforms happened once: one idea per interaction or topic, one
private answer per interaction, one reply per topic; 0 lost, 0 duplicated.

What a platform does when the gateway is down is modelled, not skipped: Discord sends an
interaction once (the member's client shows "This interaction failed", the member runs the
command again: a new interaction); the Forum sandbox sends a webhook refused with a 5xx again on
Discourse's retry schedule (shortened here with ``CHARTERFLOW_SANDBOX_WEBHOOK_RETRY``), never one
that got no answer (the gateway killed): ``hooks-redeliver`` asks the Forum for it within 2
minutes, under its first event id. A request that was cut
while the sandbox itself was killed is "unsure" (it may or may not have been taken): it may add
at most one idea, never two.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from charterflow.seed import CATEGORIES, build
from ledger import repo
from ledger.db import Ledger
from ledger.models import AuditEntry, EffectClaim, Idea, InboxEvent
from tests.procs import start, stop, subprocess_env, wait_for
from tests.support.net import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

CHARTERFLOW = str(Path(sys.executable).with_name("charterflow"))
VICTIMS = ("gateway", "workers", "sandboxes", "prefect-server")
FILED = re.compile(r"filed as \*\*#(\d+)\*\*")


@dataclass
class Sent:
    """What the members sent, by the token in each idea's text."""

    acked: dict[str, str] = field(default_factory=dict)  # token -> interaction id / topic id
    unsure: dict[str, int] = field(default_factory=dict)  # token -> attempts that may have landed
    refused: int = 0  # "This interaction failed" / the Forum unreachable: sent again
    kinds: dict[str, str] = field(default_factory=dict)  # token -> discord | forum
    # token -> each try: (time it was sent, outcome, interaction id / topic id / error)
    tries: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)


@dataclass
class Kill:
    """One child SIGKILLed: when, and when the stack was ready again (``time.time()``)."""

    victim: str
    killed: float
    ready: float | None = None


class Members:
    """Members filing ideas at a steady pace on a thread, until :meth:`stop`."""

    def __init__(self, lock: dict, forum_key: str, stop_event: threading.Event) -> None:
        self.discord, self.forum = lock["sandboxes"]["discord"], lock["sandboxes"]["discourse"]
        self.forum_key, self.stop_event = forum_key, stop_event
        community = build()
        self.discord_users = [p.discord["username"] for p in community.applicants()[:20]]
        self.forum_users = sorted({i["author"] for i in community.ideas})
        self.sent = Sent()
        self.http = httpx.Client(timeout=30)

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            if n % 4 == 0:
                self._file(f"chaos-f{n:03d}", self._forum_topic)
            else:
                self._file(f"chaos-d{n:03d}", self._discord_idea)
            self.stop_event.wait(0.7)

    def _file(self, token: str, send) -> None:
        """Send until acknowledged, as a member would (a few tries, then give up)."""
        for _ in range(20):
            if self.stop_event.is_set() and token not in self.sent.unsure:
                return
            at = time.time()
            outcome, ref = send(token)
            self.sent.tries.setdefault(token, []).append((at, outcome, ref))
            if outcome == "acked":
                self.sent.acked[token] = ref
                return
            if outcome == "unsure":
                self.sent.unsure[token] = self.sent.unsure.get(token, 0) + 1
            else:
                self.sent.refused += 1
            time.sleep(1.0)

    def _discord_idea(self, token: str) -> tuple[str, str]:
        self.sent.kinds[token] = "discord"
        user = self.discord_users[int(token[-3:]) % len(self.discord_users)]
        try:
            out = self.http.post(
                f"{self.discord}/_sandbox/interactions",
                json={
                    "type": "command",
                    "user": user,
                    "name": "idea",
                    "options": {"text": f"Idea {token}: a rota of greeters for newcomers in the help channel"},
                },
            )
        except httpx.ConnectError:
            return "refused", ""  # Discord itself unreachable: nothing was sent
        except httpx.HTTPError:
            return "unsure", ""
        result = out.json()
        if out.status_code == 200 and result.get("status") == 200 and not result.get("failed"):
            return "acked", str(result["interaction_id"])
        error = str(result.get("error") or "")
        ref = f"{result.get('interaction_id', '')}: {error}"
        # Not answered in 3 s: the gateway may have stored it; the member saw it fail.
        return ("unsure" if "did not answer" in error else "refused"), ref

    def _forum_topic(self, token: str) -> tuple[str, str]:
        self.sent.kinds[token] = "forum"
        author = self.forum_users[int(token[-3:]) % len(self.forum_users)]
        try:
            out = self.http.post(
                f"{self.forum}/posts.json",
                headers={"Api-Key": self.forum_key, "Api-Username": author},
                json={
                    "title": f"Idea {token}: monthly office hours",
                    "category": CATEGORIES["Ideas"],
                    "raw": f"Proposal {token}: the working group holds monthly open office hours.",
                },
            )
        except httpx.ConnectError:
            return "refused", ""
        except httpx.HTTPError:
            return "unsure", ""
        if out.status_code == 200:
            return "acked", str(out.json()["topic_id"])
        if out.status_code == 422 and "already" in out.text.lower():
            return "acked", ""  # an unsure try had landed: the Forum refuses the same body again
        return "refused", ""


def _status(home: Path) -> dict[str, dict]:
    try:
        return {c["name"]: c for c in json.loads((home / "status.json").read_text())["children"]}
    except (OSError, ValueError, KeyError):
        return {}


def _forum_key(home: Path) -> str:
    """The Forum API key `up` gave its children (an operator finds it in the environment)."""
    pid = _status(home)["gateway"]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        if entry.startswith(b"CHARTERFLOW_DISCOURSE_API_KEY="):
            return entry.split(b"=", 1)[1].decode()
    raise AssertionError("the gateway has no Forum API key")


def _gateway_ready(port: int) -> bool:
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    # The gateway stores and answers; in pull mode (`up`'s) it does not consult Prefect at all.
    return health.get("status") == "ok" and (health.get("prefect") or {}).get("prefect_reachable") is not False


@pytest.mark.timeout(900)
def test_every_child_killed_in_turn_while_ideas_arrive(tmp_path, record_property):
    home = tmp_path / "home"
    gateway_port = free_port()
    env = subprocess_env(
        CHARTERFLOW_HOME=str(home),
        CHARTERFLOW_PREFECT_PORT=str(free_port()),
        CHARTERFLOW_GATEWAY_HOST="127.0.0.1",
        CHARTERFLOW_GATEWAY_PORT=str(gateway_port),
        CHARTERFLOW_INSPECTOR_PORT=str(free_port()),
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        CHARTERFLOW_SANDBOX_WEBHOOK_RETRY="1,2,4,8,8,8,8,8",
    )
    log = tmp_path / "up.out"
    up = start([CHARTERFLOW, "up"], env, log)
    stop_event = threading.Event()
    try:
        assert wait_for(lambda: "charterflow is up" in log.read_text(errors="replace"), 300), log.read_text(
            errors="replace"
        )[-3000:]
        lock = json.loads((home / "up.json").read_text())
        members = Members(lock, _forum_key(home), stop_event)
        stream = threading.Thread(target=members.run, daemon=True)
        stream.start()
        started = time.time()
        recovery, kills = {}, []
        for victim in VICTIMS:
            time.sleep(4)
            before = _status(home)[victim]
            os.kill(before["pid"], signal.SIGKILL)
            killed = time.monotonic()
            kills.append(Kill(victim, time.time()))
            if victim == "gateway":
                # A topic opened while the gateway is down: its webhook gets no answer, which
                # Discourse never sends again; hooks-redeliver must ask for it.
                members._file("chaos-f999", members._forum_topic)
            assert wait_for(
                lambda v=victim, b=before: (
                    _status(home)[v]["restarts"] == b["restarts"] + 1 and _status(home)[v]["state"] == "running"
                ),
                60,
                step=0.2,
            ), log.read_text(errors="replace")[-3000:]
            assert wait_for(lambda: _gateway_ready(gateway_port), 180), log.read_text(errors="replace")[-3000:]
            recovery[victim] = time.monotonic() - killed
            kills[-1].ready = time.time()
        time.sleep(4)
        stop_event.set()
        stream.join(timeout=120)
        assert up.poll() is None, "up must not stop: " + log.read_text(errors="replace")[-3000:]
        figures = _settled(home, lock, members.sent, Timeline(started, kills))
        statuses = _status(home)
        # Each was restarted; the workers may also stop (exit 1) while the Prefect server is down,
        # and are restarted too.
        assert all(statuses[v]["restarts"] >= 1 and statuses[v]["state"] == "running" for v in VICTIMS), statuses
        restarts = sum(c["restarts"] for c in statuses.values())
        out = log.read_text(errors="replace")
        for victim in VICTIMS:
            assert f"{victim} stopped unexpectedly: exit -9 (SIGKILL); restarting it" in out
            assert f"{victim} restarted (pid" in out
    finally:
        stop_event.set()
        stop(up, sig=signal.SIGINT)
    record_property(
        "measure:chaos",
        (
            f"{len(VICTIMS)} children SIGKILLed in turn under {figures['sent']} ideas ({figures['discord']} Discord "
            f"/idea, {figures['forum']} Forum topics): {figures['acked']} acknowledged, "
            f"{figures['handled']} handled once, {figures['lost']} lost, {figures['duplicated']} duplicated; "
            f"{figures['refused']} refused while down and sent again, {figures['unsure']} unsure; "
            f"{figures['no_answer']} Forum webhooks not answered (the gateway down) and redelivered; "
            f"{restarts} restarts; back to ready after " + ", ".join(f"{k} {v:.0f} s" for k, v in recovery.items())
        ),
    )


@dataclass
class Timeline:
    """The kills of a run, to tell what was down when something was sent."""

    started: float
    kills: list[Kill]

    def at(self, t: float) -> str:
        """``+52.3 s, while workers was down (killed +50.1 s)`` or ``… s after … was back``."""
        where = "before the first kill"
        for k in self.kills:
            if t < k.killed:
                break
            killed = f"killed +{k.killed - self.started:.1f} s"
            if k.ready is None or t <= k.ready:
                where = f"while {k.victim} was down ({killed})"
            else:
                ready = f"ready +{k.ready - self.started:.1f} s"
                where = f"{t - k.ready:.1f} s after {k.victim} was back ({killed}, {ready})"
        return f"+{t - self.started:.1f} s, {where}"

    def at_iso(self, stamp: str | None) -> str:
        if not stamp:
            return "-"
        return self.at(datetime.fromisoformat(stamp).timestamp())


def _settled(home: Path, lock: dict, sent: Sent, timeline: Timeline) -> dict:
    """Wait until every acknowledged idea is handled and answered, then count (and assert)."""
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
    try:

        def snapshot() -> dict:
            with ledger.read() as session:
                ideas = list(session.scalars(select(Idea).where(Idea.title.like("Idea chaos-%"))))
                events = list(session.scalars(select(InboxEvent).where(InboxEvent.route == "idea")))
                processed = dict(
                    session.execute(
                        select(AuditEntry.subject, func.count())
                        .where(AuditEntry.action == "inbox.processed")
                        .group_by(AuditEntry.subject)
                    ).all()
                )
                effects = {k: repo.effect_get(session, key=k) for k in _effect_keys(events)}
                claims = {c.subject: c.holder for c in session.scalars(select(EffectClaim))}
            discord = httpx.get(f"{lock['sandboxes']['discord']}/_sandbox/state", timeout=30).json()
            forum = httpx.get(f"{lock['sandboxes']['discourse']}/_sandbox/state", timeout=30).json()
            return {
                "ideas": ideas,
                "events": events,
                "processed": processed,
                "discord": discord,
                "forum": forum,
                "effects": effects,
                "claims": claims,
            }

        def done() -> bool:
            try:
                s = snapshot()
            except httpx.TransportError:
                return False  # the sandboxes, restarted last but one, may not listen yet
            titles = " ".join(i.title for i in s["ideas"])
            return (
                all(token in titles for token in sent.acked)
                and all(e.processed_at is not None for e in s["events"])
                and not s["forum"]["webhook_pending"]
                and len(_answers(s)) >= len([t for t in sent.acked if sent.kinds[t] == "discord"])
            )

        settled = wait_for(done, 240, step=2)
        s = snapshot()
    finally:
        ledger.dispose()
    by_token: dict[str, list[Idea]] = {}
    for idea in s["ideas"]:
        token = re.search(r"chaos-[df]\d{3}", idea.title).group(0)
        by_token.setdefault(token, []).append(idea)
    lost = sorted(t for t in sent.acked if not by_token.get(t))
    # An idea per acknowledged send, and at most one per send that may have landed.
    duplicated = sorted(
        t for t, rows in by_token.items() if len(rows) > (1 if t in sent.acked else 0) + sent.unsure.get(t, 0)
    )
    answers = _answers(s)
    replies = _replies(s)
    unanswered = [
        t
        for t, rows in by_token.items()
        for i in rows
        if (answers if sent.kinds[t] == "discord" else replies).get(i.id, 0) != 1
    ]
    unhandled = [e.id for e in s["events"] if e.processed_at is None]
    twice = [subject for subject, n in s["processed"].items() if n != 1]
    report = _Report(s, sent, timeline, home)
    assert settled, f"not settled: lost {lost}, unanswered {unanswered}, unprocessed {unhandled}\n" + report.tokens(
        sorted({*lost, *unanswered})
    )
    assert lost == [] and duplicated == [], f"{(lost, duplicated)}\n" + report.tokens([*lost, *duplicated])
    assert unanswered == [], f"ideas whose answer/reply is not there exactly once: {unanswered}\n" + report.tokens(
        unanswered
    )
    assert unhandled == [] and twice == [], (unhandled, twice)
    assert len(s["events"]) >= len(sent.acked)
    # At least chaos-f999's webhook got no answer, and every acknowledged topic still became an
    # idea: what the Forum sent once was asked for again (hooks-redeliver).
    no_answer = [d for d in s["forum"]["webhook_deliveries"] if d["status"] is None]
    assert no_answer and "chaos-f999" in sent.acked, s["forum"]["webhook_deliveries"]
    return {
        "no_answer": len(no_answer),
        "sent": len(sent.kinds),
        "discord": sum(1 for k in sent.kinds.values() if k == "discord"),
        "forum": sum(1 for k in sent.kinds.values() if k == "forum"),
        "acked": len(sent.acked),
        "handled": sum(1 for t in sent.acked if len(by_token.get(t, [])) == 1),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "refused": sent.refused,
        "unsure": sum(sent.unsure.values()),
    }


def _answers(s: dict) -> dict[int, int]:
    """Idea id -> private Discord answers naming it."""
    found: dict[int, int] = {}
    for message in s["discord"]["messages"]:
        match = FILED.search(message.get("content") or "")
        if match:
            found[int(match.group(1))] = found.get(int(match.group(1)), 0) + 1
    return found


def _replies(s: dict) -> dict[int, int]:
    """Idea id -> Forum replies naming it."""
    found: dict[int, int] = {}
    for post in s["forum"]["posts"]:
        match = FILED.search(post.get("raw") or "")
        if match:
            found[int(match.group(1))] = found.get(int(match.group(1)), 0) + 1
    return found


def _effect_keys(events: list[InboxEvent]) -> list[str]:
    """The keys of the answer effects of each Discord event (flows.kit.answer_interaction)."""
    keys = []
    for e in events:
        token = str(((e.payload or {}).get("attributes") or {}).get("interaction_token") or "")
        if token:
            keys += [f"ideas:answer:inbox:{e.id}", _first_key(token)]
    return keys


def _names(text: str | None, idea_id: int) -> bool:
    match = FILED.search(text or "")
    return match is not None and int(match.group(1)) == idea_id


def _first_key(token: str) -> str:
    return f"interaction-original:{hashlib.sha256(token.encode()).hexdigest()[:24]}"


class _Report:
    """Per token, what happened: each try and what was down then; per idea its event, the
    answer's effects and claims, the interaction's delivery, every message of the interaction
    or naming the idea (an @original edit or a follow-up, when it was sent) and the log lines."""

    def __init__(self, s: dict, sent: Sent, timeline: Timeline, home: Path) -> None:
        self.s, self.sent, self.timeline = s, sent, timeline
        self.dm_channels = {c["id"] for c in s["discord"]["channels"] if c.get("type") == 1}
        self.logs = [
            line
            for path in sorted((home / "logs").glob("*.log"))
            for line in path.read_text(errors="replace").splitlines()
            if "inbox" in line
        ]

    def tokens(self, tokens: list[str]) -> str:
        return "\n".join(self.token(t) for t in dict.fromkeys(tokens))

    def token(self, token: str) -> str:
        out = [f"{token} ({self.sent.kinds.get(token)}):"]
        for at, outcome, ref in self.sent.tries.get(token, []):
            out.append(f"  try {outcome} {ref!r} at {self.timeline.at(at)}")
        ideas = [i for i in self.s["ideas"] if re.search(rf"\b{token}\b", i.title)]
        if not ideas:
            out.append("  no idea in the ledger")
            out += self.topic(token)
        for idea in ideas:
            out += self.idea(idea)
        return "\n".join(out)

    def topic(self, token: str) -> list[str]:
        """A Forum token without an idea: its topic on the Forum, and any inbox event naming it."""
        topics = [t for t in self.s["forum"]["topics"] if re.search(rf"\b{token}\b", t.get("title") or "")]
        out = [f"    Forum topic {t.get('id')} created {self.timeline.at_iso(t.get('created_at'))}" for t in topics]
        ids = {str(t.get("id")) for t in topics}
        for e in self.s["events"]:
            topic = ((e.payload or {}).get("data") or {}).get("topic") or {}
            if str(topic.get("id")) in ids:
                out.append(f"    inbox event {e.id}: processed {e.processed_at}, result {e.result_ref}")
        if topics and len(out) == len(topics):
            out.append("    no inbox event names it (its webhook never reached the gateway)")
        return out

    def idea(self, idea: Idea) -> list[str]:
        naming = [m for m in self.s["discord"]["messages"] if _names(m.get("content"), idea.id)]
        posts = [p for p in self.s["forum"]["posts"] if _names(p.get("raw"), idea.id)]
        count = len(naming) if idea.source == "discord" else len(posts)
        verdict = "missing (0)" if count == 0 else ("once" if count == 1 else f"doubled ({count})")
        out = [f"  idea #{idea.id} source_key {idea.source_key}: answer {verdict}"]
        event = next((e for e in self.s["events"] if e.result_ref == f"idea:{idea.id}"), None)
        if event is None:
            out.append("    no processed inbox event names it")
        else:
            received = self.timeline.at(event.received_at.replace(tzinfo=UTC).timestamp())
            out.append(
                f"    inbox event {event.id} received {received}, processed {event.processed_at}, "
                f"dispatch attempts {event.dispatch_attempts}, result {event.result_ref}"
            )
        if idea.source == "forum":
            out += [f"    reply post {p.get('id')}: {(p.get('raw') or '')[:80]!r}" for p in posts]
            return out
        iid = idea.source_key.rsplit(":", 1)[-1]
        for d in self.s["discord"]["interactions"]:
            if str(d.get("interaction_id")) == iid:
                out.append(
                    f"    interaction {iid} delivered: status {d.get('status')}, {d.get('elapsed')} s, "
                    f"error {d.get('error')!r}"
                )
        token = str(((event.payload or {}).get("attributes") or {}).get("interaction_token") or "") if event else ""
        if event is not None and token:
            for key in (f"ideas:answer:inbox:{event.id}", _first_key(token)):
                subject = "effect:" + hashlib.sha256(key.encode()).hexdigest()
                effect, claim = self.s["effects"].get(key), self.s["claims"].get(subject)
                out.append(f"    effect {key.split(':', 1)[0]}: {effect}, claim {claim}")
        # The state does not name a message's interaction: a deferred "thinking…" message never
        # edited is the member's (visible_to) empty one sent within 10 s of the event's receipt.
        user = str(((event.payload or {}).get("attributes") or {}).get("user_id") or "") if event else ""
        received = event.received_at.replace(tzinfo=UTC).timestamp() if event else 0.0
        ours = {
            m["id"]: m
            for m in self.s["discord"]["messages"]
            if user
            and m.get("visible_to") == user
            and not m.get("content")
            and abs(datetime.fromisoformat(m["timestamp"]).timestamp() - received) < 10
        }
        ours.update({m["id"]: m for m in naming})
        for m in ours.values():
            kind = "follow-up" if m.get("content") else "@original, not edited"
            kind = "@original edit" if m.get("edited") else kind
            kind = "direct message" if m.get("channel_id") in self.dm_channels else kind
            out.append(
                f"    message {m['id']} ({kind}): {(m.get('content') or '')[:80]!r}"
                f" sent {self.timeline.at_iso(m.get('timestamp'))}, edited {self.timeline.at_iso(m.get('edited_at'))}"
            )
        if event is not None:
            marks = (f"inbox:{event.id} ", f"inbox:{event.id})", f"inbox event {event.id}:", f"inbox-idea-{event.id}")
            out += [f"    log: {line[:300]}" for line in self.logs if any(k in line for k in marks)][:12]
        return out
