"""R-ELIG-1 .. R-ELIG-4 and R-APP-1, one table per ruling."""

from __future__ import annotations

import pytest

from rules import Applicant, DiscordEvidence, DiscourseEvidence, decide_eligibility
from tests.support.rules import NOW, days_ago


def forum(age_days: float, *, visited: int | None = 20, posts: int | None = 0, seen_days: float | None = None):
    return DiscourseEvidence(
        created_at=days_ago(age_days),
        days_visited=visited,
        post_count=posts,
        last_seen_at=None if seen_days is None else days_ago(seen_days),
        fetched_at=NOW,
    )


def discord(age_days: float, messages: int | None = 10):
    return DiscordEvidence(joined_at=days_ago(age_days), messages_90d=messages, fetched_at=NOW)


def decide(applicant, *, discourse=None, discord_ev=None, members=(), charter):
    return decide_eligibility(
        applicant, discourse=discourse, discord=discord_ev, dsf_members=members, now=NOW, charter=charter
    )


# (name, evidence, expected allowed, expected status)
R_ELIG_1_FORUM = [
    ("day-89-too-young", forum(89), False, "not-eligible"),
    ("day-89.99-too-young", forum(89.99), False, "not-eligible"),
    ("day-90-old-enough", forum(90), True, "eligible"),
    ("day-91-old-enough", forum(91), True, "eligible"),
    ("visited-9-posts-4-inactive", forum(200, visited=9, posts=4), False, "not-eligible"),
    ("visited-10-is-active", forum(200, visited=10, posts=0), True, "eligible"),
    ("posts-5-is-active", forum(200, visited=0, posts=5), True, "eligible"),
    ("seen-90-days-ago-ok", forum(200, seen_days=90), True, "eligible"),
    ("seen-91-days-ago-inactive", forum(200, seen_days=91), False, "not-eligible"),
    ("not-fetched-is-unknown", None, False, "unknown"),
    # A figure the Forum did not report (None) is unknown, never zero (R-ELIG-1).
    ("visits-unreported-few-posts-is-unknown", forum(200, visited=None, posts=2), False, "unknown"),
    ("posts-unreported-few-visits-is-unknown", forum(200, visited=3, posts=None), False, "unknown"),
    ("both-unreported-is-unknown", forum(200, visited=None, posts=None), False, "unknown"),
    ("visits-unreported-5-posts-is-active", forum(200, visited=None, posts=5), True, "eligible"),
    ("unreported-but-too-young-is-no", forum(30, visited=None, posts=None), False, "not-eligible"),
    ("unreported-but-not-seen-is-no", forum(200, visited=None, posts=2, seen_days=120), False, "not-eligible"),
]


@pytest.mark.parametrize("name,evidence,allowed,status", R_ELIG_1_FORUM, ids=[c[0] for c in R_ELIG_1_FORUM])
def test_R_ELIG_1_forum(name, evidence, allowed, status, charter):
    d = decide(Applicant(forum="quill"), discourse=evidence, charter=charter)
    assert (d.allowed, d.evidence["status"], d.ruling) == (allowed, status, "R-ELIG-1")


R_ELIG_1_DISCORD = [
    ("day-89-too-new", discord(89), False, "not-eligible"),
    ("day-90-member-long-enough", discord(90), True, "eligible"),
    ("day-91-member-long-enough", discord(91), True, "eligible"),
    ("4-messages-too-few", discord(120, 4), False, "not-eligible"),
    ("5-messages-enough", discord(120, 5), True, "eligible"),
    ("search-unavailable-is-unknown-not-yes", discord(120, None), False, "unknown"),
    ("search-unavailable-but-too-new-is-no", discord(30, None), False, "not-eligible"),
]


@pytest.mark.parametrize("name,evidence,allowed,status", R_ELIG_1_DISCORD, ids=[c[0] for c in R_ELIG_1_DISCORD])
def test_R_ELIG_1_discord(name, evidence, allowed, status, charter):
    d = decide(Applicant(discord="quill"), discord_ev=evidence, charter=charter)
    assert (d.allowed, d.evidence["status"]) == (allowed, status)


def test_R_ELIG_1_one_active_platform_is_enough(charter):
    d = decide(
        Applicant(forum="quill", discord="quill"), discourse=forum(10), discord_ev=discord(400, 50), charter=charter
    )
    assert d.allowed and "discord" in d.reason


def test_R_ELIG_1_unknown_tells_what_to_do(charter):
    d = decide(Applicant(discord="quill"), discord_ev=discord(400, None), charter=charter)
    assert not d.allowed and d.evidence["status"] == "unknown"
    assert "nominate" in d.reason and "retried" in d.reason


def test_R_ELIG_1_unknown_on_one_and_no_on_other_is_unknown(charter):
    d = decide(
        Applicant(forum="quill", discord="quill"), discourse=forum(10), discord_ev=discord(400, None), charter=charter
    )
    assert d.evidence["status"] == "unknown" and not d.allowed


def test_R_ELIG_2_valid_nomination_needs_no_activity(charter):
    d = decide(
        Applicant(forum="quill", nominator="Marlow"), discourse=forum(3), members=["marlow", "tansy"], charter=charter
    )
    assert (d.allowed, d.ruling) == (True, "R-ELIG-2")
    assert d.evidence["nomination_valid"] is True


@pytest.mark.parametrize("nominator", ["@marlow", " Marlow ", "@ Marlow"])
def test_R_ELIG_2_nominator_written_as_a_handle_is_the_member(nominator, charter):
    # "@marlow" (as handles are written on Discord and the Forum) names marlow of the DSF list.
    d = decide(Applicant(forum="quill", nominator=nominator), discourse=forum(3), members=["marlow"], charter=charter)
    assert (d.allowed, d.ruling, d.evidence["nomination_valid"]) == (True, "R-ELIG-2", True)


@pytest.mark.parametrize("nominator", ["", "   "])
def test_R_ELIG_3_blank_nominator_is_no_nomination(nominator, charter):
    # An empty nominator field names nobody: a self-nomination, not an invalid nomination.
    d = decide(Applicant(forum="quill", nominator=nominator), discourse=forum(300), members=["marlow"], charter=charter)
    assert (d.allowed, d.ruling) == (True, "R-ELIG-1") and "nomination" not in d.reason
    assert "nomination_valid" not in d.evidence


def test_R_ELIG_3_own_handle_with_at_is_self_nomination(charter):
    d = decide(Applicant(forum="quill", nominator="@Quill"), discourse=forum(5), members=["quill"], charter=charter)
    assert (d.allowed, d.ruling) == (False, "R-ELIG-3")


def test_R_ELIG_2_invalid_nominator_is_shown_and_refused(charter):
    d = decide(Applicant(forum="quill", nominator="ghost"), discourse=forum(3), members=["marlow"], charter=charter)
    assert (d.allowed, d.ruling) == (False, "R-ELIG-2")
    assert "ghost is not on the list of DSF Individual Members" in d.reason


def test_R_ELIG_2_invalid_nominator_but_active_is_eligible_by_activity(charter):
    d = decide(Applicant(forum="quill", nominator="ghost"), discourse=forum(300), members=["marlow"], charter=charter)
    assert (d.allowed, d.ruling) == (True, "R-ELIG-1")
    assert "nomination is invalid" in d.reason


@pytest.mark.parametrize("nominator", [None, "quill", "QUILL"])
def test_R_ELIG_3_self_nomination_needs_only_activity(nominator, charter):
    # Naming yourself as nominator is a self-nomination, even if you are a DSF member.
    too_new = decide(
        Applicant(forum="quill", nominator=nominator), discourse=forum(5), members=["quill"], charter=charter
    )
    active = decide(
        Applicant(forum="quill", nominator=nominator), discourse=forum(300), members=["quill"], charter=charter
    )
    assert not too_new.allowed and active.allowed
    assert too_new.ruling == ("R-ELIG-1" if nominator is None else "R-ELIG-3")


def test_R_ELIG_3_charter_may_forbid_self_nomination(charter):
    strict = charter.model_copy(
        update={"eligibility": charter.eligibility.model_copy(update={"self_nomination": False})}
    )
    d = decide(Applicant(forum="quill"), discourse=forum(300), charter=strict)
    assert (d.allowed, d.ruling) == (False, "R-ELIG-3")


def test_R_ELIG_4_evidence_keeps_figures_and_fetch_time(charter):
    d = decide(
        Applicant(forum="quill", discord="quill"),
        discourse=forum(120, visited=12, posts=3),
        discord_ev=discord(100, 7),
        charter=charter,
    )
    platforms = d.evidence["platforms"]
    assert platforms["discourse"]["days_visited"] == 12
    assert platforms["discourse"]["fetched_at"] == NOW.isoformat()
    assert platforms["discord"]["messages_90d"] == 7
    assert platforms["discord"]["answer"] == "yes"
    assert d.evidence["checked_at"] == NOW.isoformat()


def test_R_ELIG_4_evidence_of_unnamed_platform_is_ignored(charter):
    d = decide(Applicant(forum="quill"), discourse=forum(5), discord_ev=discord(400, 99), charter=charter)
    assert not d.allowed and "discord" not in d.evidence["platforms"]


def test_R_APP_1_application_names_at_least_one_platform(charter):
    d = decide(Applicant(), charter=charter)
    assert (d.allowed, d.ruling) == (False, "R-APP-1")
