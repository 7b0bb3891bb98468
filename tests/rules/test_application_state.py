"""rules/applications.py application_state: what an applicant is told (R-APP-4), one row per state."""

from __future__ import annotations

import pytest

from rules.applications import ApplicationProgress, application_state


@pytest.mark.parametrize(
    ("progress", "allowed", "ruling", "code", "reason"),
    [
        (ApplicationProgress(status="open"), True, "R-APP-2", "waiting", None),
        (ApplicationProgress(status="confirmed"), True, "R-ELIG-1", "checking", None),
        (ApplicationProgress(status="confirmed", check_outcome="no"), True, "R-ELIG-1", "checking", None),
        # R-ELIG-1: "unknown" is never "yes": the applicant is told why, under the check's ruling.
        (
            ApplicationProgress(
                status="confirmed",
                check_outcome="unknown",
                check_ruling="R-ELIG-1",
                check_reason="Discord's message search is not ready",
            ),
            True,
            "R-ELIG-1",
            "unknown",
            "Discord's message search is not ready",
        ),
        (ApplicationProgress(status="voting"), True, "R-VOTE-APPROVE", "voting", None),
        (ApplicationProgress(status="approved"), True, "R-VOTE-APPROVE", "approved", None),
        (ApplicationProgress(status="rejected"), False, "R-VOTE-APPROVE", "not-approved", None),
        (ApplicationProgress(status="expired"), False, "R-APP-2", "expired", None),
        # Refused after the check: its ruling and reason; without a check, R-ELIG-1's default.
        (
            ApplicationProgress(status="refused", check_outcome="no", check_ruling="R-ELIG-2", check_reason="x"),
            False,
            "R-ELIG-2",
            "refused",
            "x",
        ),
        (
            ApplicationProgress(status="refused"),
            False,
            "R-ELIG-1",
            "refused",
            "the charter's eligibility rule is not met",
        ),
        (ApplicationProgress(status="withdrawn"), False, "R-APP-4", "other", "the application is withdrawn"),
    ],
)
def test_r_app_4_application_state(progress, allowed, ruling, code, reason):
    decision = application_state(progress)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, ruling, code)
    if reason is not None:
        assert decision.reason == reason
