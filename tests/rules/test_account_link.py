"""rules/applications.py: linking another platform's account to a membership (R-APP-2, R-APP-3),
one table row per outcome, in the order the checks are made."""

from __future__ import annotations

import pytest

from rules.applications import LinkCode, LinkRequest, check_link_code, check_link_request


@pytest.mark.parametrize(
    ("request_", "allowed", "ruling", "code"),
    [
        (LinkRequest(named_served=False, already_linked=True), False, "R-APP-2", "bad-request"),
        (LinkRequest(named_served=True, already_linked=True, member=False), False, "R-APP-3", "already-linked"),
        (LinkRequest(named_served=True, member=False, pending_other=True), False, "R-APP-2", "not-a-member"),
        (LinkRequest(named_served=True, member=True, pending_other=True), False, "R-APP-2", "pending"),
        (LinkRequest(named_served=True, member=True), True, "R-APP-2", "send-code"),
    ],
)
def test_link_request(request_, allowed, ruling, code):
    decision = check_link_request(request_)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, ruling, code)


@pytest.mark.parametrize(
    ("code_", "allowed", "ruling", "code"),
    [
        (LinkCode(request_found=False, code_matches=True, member=True), False, "R-APP-2", "no-request"),
        (LinkCode(request_found=True, code_matches=False, member=True), False, "R-APP-2", "wrong-code"),
        (LinkCode(request_found=True, code_matches=True, member=False), False, "R-APP-2", "not-a-member"),
        (
            LinkCode(request_found=True, code_matches=True, member=True, already_linked=True),
            False,
            "R-APP-3",
            "already-linked",
        ),
        (LinkCode(request_found=True, code_matches=True, member=True), True, "R-APP-2", "link"),
    ],
)
def test_link_code(code_, allowed, ruling, code):
    decision = check_link_code(code_)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, ruling, code)
