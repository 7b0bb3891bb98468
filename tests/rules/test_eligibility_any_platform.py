"""R-ELIG-1 on a platform the charter has no table for (a connector plugin's): the Forum's
thresholds on what the platform reports; unknown figures never count as yes."""

from __future__ import annotations

import pytest

from rules import ActivityEvidence, Applicant, check_activity, decide_eligibility
from tests.support.rules import NOW, days_ago


def parlor(age_days: float, *, posts: int | None = 0, visited: int | None = 20, seen_days: float | None = None):
    return ActivityEvidence(
        created_at=days_ago(age_days),
        post_count=posts,
        days_visited=visited,
        last_seen_at=None if seen_days is None else days_ago(seen_days),
        fetched_at=NOW,
    )


# (name, evidence, expected answer)
R_ELIG_1_ANY = [
    ("day-89-too-young", parlor(89), "no"),
    ("day-90-old-enough", parlor(90), "yes"),
    ("visited-9-posts-4-inactive", parlor(200, visited=9, posts=4), "no"),
    ("posts-5-is-active", parlor(200, visited=None, posts=5), "yes"),
    ("visited-10-is-active", parlor(200, visited=10, posts=None), "yes"),
    ("seen-91-days-ago-inactive", parlor(200, seen_days=91), "no"),
    ("reports-neither-is-unknown", parlor(200, visited=None, posts=None), "unknown"),
    ("not-fetched-is-unknown", None, "unknown"),
]


@pytest.mark.parametrize(("name", "evidence", "answer"), R_ELIG_1_ANY, ids=[c[0] for c in R_ELIG_1_ANY])
def test_r_elig_1_on_any_platform(name, evidence, answer, charter):
    check = check_activity("parlor", evidence, now=NOW, charter=charter)
    assert (check.platform, check.answer) == ("parlor", answer)
    assert check.reason


def decide_on_parlor(applicant: Applicant, charter, evidence: ActivityEvidence):
    """R-ELIG-1 with the applicant's activity on ``parlor`` only (no Forum, Discord or DSF list)."""
    return decide_eligibility(
        applicant,
        discourse=None,
        discord=None,
        dsf_members=(),
        now=NOW,
        charter=charter,
        others={"parlor": evidence},
    )


def test_an_application_naming_only_another_platform_is_decided_on_it(charter):
    applicant = Applicant(accounts={"parlor": "nell_bracken"})
    decision = decide_on_parlor(applicant, charter, parlor(400, posts=25))
    assert decision.allowed and decision.ruling == "R-ELIG-1" and "parlor" in decision.reason
    assert decision.evidence["platforms"]["parlor"]["post_count"] == 25
    unknown = decide_eligibility(
        applicant, discourse=None, discord=None, dsf_members=(), now=NOW, charter=charter, others={}
    )
    assert not unknown.allowed and unknown.evidence["status"] == "unknown"


def test_a_nominator_naming_their_own_account_on_another_platform_is_a_self_nomination(charter):
    applicant = Applicant(accounts={"parlor": "nell_bracken"}, nominator="Nell_Bracken")
    decision = decide_on_parlor(applicant, charter, parlor(400, posts=25))
    assert decision.allowed and decision.ruling == "R-ELIG-1"
    assert "nomination_valid" not in decision.evidence  # not checked against the DSF list


def test_no_account_anywhere_is_refused_by_r_app_1(charter):
    decision = decide_eligibility(
        Applicant(accounts={"parlor": ""}), discourse=None, discord=None, dsf_members=(), now=NOW, charter=charter
    )
    assert not decision.allowed and decision.ruling == "R-APP-1"
