"""Eligibility end to end (R-ELIG-1..4): a 60-day-old account with no nominator is refused kindly
naming the rule; a DSF Individual Member's nomination makes a new account eligible (R-ELIG-2);
a nominator who is not on the DSF list makes the nomination invalid, with that reason shown."""

from __future__ import annotations

from datetime import timedelta

import httpx

from flows.membership.eligibility import check_eligibility
from flows.membership.intake import expire_applications, intake
from ledger.models import Application, ApplicationStatus, EligibilityOutcome
from tests.support.membership import NOW, apply_proven, discord_dms, forum_pms


def _app(world, app_id):
    with world.ledger.read() as session:
        app = session.get(Application, app_id)
        check = app.eligibility[-1]
        return app.status, app.ballot_id, check.outcome, check.ruling, check.reason, dict(check.evidence)


def test_not_eligible_nominated_and_invalid_nomination(world):
    # A Forum account 60 days old, active but too new, nobody nominating: refused, told kindly.
    refused = apply_proven(world, "rowan_vale")
    status, ballot_id, outcome, ruling, reason, evidence = _app(world, refused["application"])
    assert (status, outcome, ruling, ballot_id) == (ApplicationStatus.REFUSED, EligibilityOutcome.NO, "R-ELIG-1", None)
    assert refused["eligibility"]["status"] == "refused" and "not active enough yet" in reason
    # R-ELIG-4: the figures used and when they were fetched are kept.
    forum = evidence["platforms"]["discourse"]
    assert forum["days_visited"] == 30 and forum["fetched_at"] and forum["answer"] == "no"
    [message] = forum_pms(world, "rowan_vale")
    assert "(R-ELIG-1)" in message and "not met yet" in message
    assert "This is not a judgement of you or your work" in message and "nominate" in message

    # The same kind of new account, nominated by a DSF Individual Member: eligible, ballot open.
    nominated = apply_proven(world, "sasha_lind", nominator="ursula_finch")
    status, ballot_id, outcome, ruling, reason, _ = _app(world, nominated["application"])
    assert (status, outcome, ruling) == (ApplicationStatus.VOTING, EligibilityOutcome.YES, "R-ELIG-2")
    assert ballot_id is not None and "ursula_finch, a DSF Individual Member" in reason
    assert forum_pms(world, "sasha_lind") == []

    # Nominated by someone who is not on the DSF list: the nomination is invalid, and says so.
    invalid = apply_proven(world, "wren_calloway", nominator="mallory_quint")
    status, ballot_id, outcome, ruling, reason, evidence = _app(world, invalid["application"])
    assert (status, outcome, ruling, ballot_id) == (ApplicationStatus.REFUSED, EligibilityOutcome.NO, "R-ELIG-2", None)
    assert "mallory_quint is not on the list of DSF Individual Members" in reason
    [message] = forum_pms(world, "wren_calloway")
    assert "(R-ELIG-2)" in message and "mallory_quint is not on the list" in message

    # Re-running eligibility for the refused ones sends nothing new and decides nothing again.

    before = world.writes()
    assert check_eligibility(application_id=refused["application"], now=NOW)["changed"] is False
    assert world.writes() == before and len(forum_pms(world, "rowan_vale")) == 1


def test_unknown_eligibility_is_checked_again_a_day_later(world):
    # Discord's message search is not indexed yet: a Discord-only applicant's activity is
    # unknown (R-ELIG-1), the application waits confirmed and the applicant is told once.
    httpx.post(f"{world.discord_url}/_sandbox/faults", json={"search_not_indexed": -1}, timeout=10).raise_for_status()
    user = world.platforms.space("discord").directory.find_user("yara_penhale")
    first = intake(
        discord_username="yara_penhale",
        motivation="I welcome newcomers in the help channels.",
        experience="Moderation of a regional user group.",
        source="discord",
        source_ref="test:yara-unknown",
        proven_accounts={"discord": user.id},
        now=NOW,
    )
    app_id = first["application"]
    assert first["eligibility"]["status"] == "unknown"

    def state():
        with world.ledger.read() as session:
            app = session.get(Application, app_id)
            return app.status, [c.outcome for c in app.eligibility]

    def told():
        return [m for m in discord_dms(world, "yara_penhale") if "could not yet tell" in m["content"]]

    assert state() == (ApplicationStatus.CONFIRMED, [EligibilityOutcome.UNKNOWN]) and len(told()) == 1
    # It promises only what happens: an open application cannot take a nomination later (R-APP-3
    # refuses a second one), so the message does not offer one.
    assert "once a day" in told()[0]["content"] and "nomination" not in told()[0]["content"]
    # The hourly run an hour later leaves it; a day later it checks again (still unknown: not
    # told again); once the figures are known it is decided and the ballot opens.
    expire_applications(now=NOW + timedelta(hours=1))
    assert state() == (ApplicationStatus.CONFIRMED, [EligibilityOutcome.UNKNOWN])
    expire_applications(now=NOW + timedelta(days=1))
    assert state() == (ApplicationStatus.CONFIRMED, [EligibilityOutcome.UNKNOWN] * 2) and len(told()) == 1
    httpx.post(f"{world.discord_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
    expire_applications(now=NOW + timedelta(days=2, hours=1))
    assert state() == (ApplicationStatus.VOTING, [EligibilityOutcome.UNKNOWN] * 2 + [EligibilityOutcome.YES])
