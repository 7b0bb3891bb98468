"""R-BUDGET rules, table-driven: the states read from a proposal, the moves, the spending checks
(over the approved amount only with a reason, flagged), amounts and the totals per currency."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rules.budget import (
    CHARTER_IDEAS,
    BudgetState,
    check_actor,
    check_close,
    check_spending,
    check_transition,
    parse_amount,
    state_of,
    totals,
)

S = BudgetState


@pytest.mark.parametrize(
    ("status", "decision", "closed", "endorsed", "expected"),
    [
        ("draft", None, False, False, S.REQUESTED),
        ("endorsing", None, False, False, S.REQUESTED),
        ("endorsing", None, False, True, S.ENDORSED),
        ("escalated", None, False, True, S.WITH_BOARD),
        ("escalated", "needs-info", False, True, S.WITH_BOARD),
        ("decided", "approved", False, True, S.APPROVED),
        ("decided", "rejected", False, True, S.REJECTED),
        ("decided", "approved", True, True, S.CLOSED),
        ("withdrawn", None, False, False, S.WITHDRAWN),
    ],
)
def test_r_budget_state_is_read_from_the_proposal(status, decision, closed, endorsed, expected):
    assert state_of(status=status, decision=decision, closed=closed, endorsement_passed=endorsed) == expected


def test_unknown_proposal_status_is_a_value_error():
    with pytest.raises(ValueError, match="status"):
        state_of(status="lost", decision=None, closed=False)


@pytest.mark.parametrize(
    ("current", "target", "allowed", "ruling"),
    [
        (S.REQUESTED, S.ENDORSED, True, "R-BOARD"),
        (S.REQUESTED, S.WITH_BOARD, True, "R-BOARD"),  # the charter asks for no endorsement
        (S.ENDORSED, S.WITH_BOARD, True, "R-BOARD"),
        (S.WITH_BOARD, S.APPROVED, True, "R-BOARD"),
        (S.WITH_BOARD, S.REJECTED, True, "R-BOARD"),
        (S.APPROVED, S.CLOSED, True, "R-BUDGET"),
        (S.REJECTED, S.CLOSED, True, "R-BUDGET"),
        (S.REQUESTED, S.APPROVED, False, "R-BUDGET"),  # the Board decides, after the WG
        (S.WITH_BOARD, S.CLOSED, False, "R-BUDGET"),
        (S.CLOSED, S.APPROVED, False, "R-BUDGET"),
        (S.WITHDRAWN, S.WITH_BOARD, False, "R-BUDGET"),
    ],
)
def test_r_budget_moves(current, target, allowed, ruling):
    decision = check_transition(current, target)
    assert (decision.allowed, decision.ruling) == (allowed, ruling)
    assert decision.evidence == {"from": current.value, "to": target.value}


def test_r_budget_close_only_after_the_board_decided():
    assert check_close("approved").allowed and check_close("rejected").allowed
    refused = check_close("with-board")
    assert not refused.allowed and refused.ruling == "R-BUDGET"
    assert "cannot become closed" in refused.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", Decimal("120.00")),
        ("1,200.5", Decimal("1200.50")),
        (Decimal("0.01"), Decimal("0.01")),
        (7, Decimal("7.00")),
    ],
)
def test_amounts(value, expected):
    assert parse_amount(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-5", "more than zero"),
        ("0", "more than zero"),
        ("12.345", "two decimals"),
        ("1e10", "two decimals"),
        ("abc", "not a number"),
        ("", "required"),
        (None, "required"),
        ("NaN", "more than zero"),
        (12.5, "not a float"),
    ],
)
def test_bad_amounts_name_the_field(value, problem):
    with pytest.raises(ValueError, match=f"amount: .*{problem}"):
        parse_amount(value)


@pytest.mark.parametrize("value", ["12,50", "1,5", "1,2,3", "1,00.50", "1000,00", ",500"])
def test_r_budget_a_decimal_comma_is_refused_not_read_as_thousands(value):
    # "12,50" was read as 1250: a request asked the Board for a hundred times its amount.
    with pytest.raises(ValueError, match="amount: .*comma only separates thousands"):
        parse_amount(value)


@pytest.mark.parametrize(("value", "expected"), [("1,000", Decimal("1000")), ("12,345,678.90", Decimal("12345678.90"))])
def test_r_budget_thousands_separators_still_read(value, expected):
    assert parse_amount(value) == expected


D = Decimal
SPEND = {
    "state": S.APPROVED,
    "approved": D("1000.00"),
    "request_currency": "EUR",
    "spent": D("700.00"),
    "currency": "EUR",
    "reason": None,
}


@pytest.mark.parametrize(
    ("changes", "allowed", "flagged", "says"),
    [
        ({"amount": D("300.00")}, True, False, "0.00 EUR left"),
        ({"amount": D("120.00")}, True, False, "180.00 EUR left"),
        ({"amount": D("300.01")}, False, False, "give a reason"),
        ({"amount": D("350.00"), "reason": "  "}, False, False, "give a reason"),
        ({"amount": D("350.00"), "reason": "the host raised its price"}, True, True, "flagged"),
        ({"amount": D("10.00"), "currency": "USD"}, False, False, "the request is in EUR"),
        ({"amount": D("10.00"), "state": S.WITH_BOARD}, False, False, "not approved"),
        ({"amount": D("10.00"), "state": S.CLOSED}, False, False, "closed"),
        ({"amount": D("10.00"), "state": S.REJECTED}, False, False, "not approved"),
    ],
)
def test_r_budget_spending(changes, allowed, flagged, says):
    decision = check_spending(**{**SPEND, **changes})
    assert decision.ruling == "R-BUDGET"
    assert decision.allowed is allowed and decision.evidence["flagged"] is flagged
    assert says in decision.reason


def test_over_by_is_in_the_evidence():
    decision = check_spending(**{**SPEND, "amount": D("350.00"), "reason": "price rise"})
    assert decision.evidence["over_by"] == D("50.00")
    assert decision.evidence["left_after"] == D("-50.00")


def test_totals_per_currency_in_decimal():
    rows = [
        {"currency": "EUR", "amount": D("1200.00"), "approved": D("1000.00"), "spent": D("1050.00")},
        {"currency": "EUR", "amount": D("0.10"), "approved": D("0.10"), "spent": D("0.20")},
        {"currency": "USD", "amount": D("80.00"), "approved": None, "spent": D("0")},
    ]
    assert totals(rows) == {
        "EUR": {"requested": D("1200.10"), "approved": D("1000.10"), "spent": D("1050.20"), "left": D("-50.10")},
        "USD": {"requested": D("80.00"), "approved": D("0.00"), "spent": D("0.00"), "left": D("0.00")},
    }
    assert all(isinstance(v, Decimal) for t in totals(rows).values() for v in t.values())


def test_the_charters_budget_ideas():
    titles = [t.lower() for t, _ in CHARTER_IDEAS]
    for word in ("training", "bots", "community", "forum", "nitro"):
        assert any(word in t for t in titles), word
    assert len(set(titles)) == len(titles) == 5


@pytest.mark.parametrize(
    ("case", "member", "budget_request", "allowed", "code"),
    [
        ("a member on a budget request", True, True, True, "member"),
        ("not a member", False, True, False, "not-a-member"),
        ("membership is checked first", False, False, False, "not-a-member"),
        ("not a budget request", True, False, False, "unknown-proposal"),
    ],
)
def test_R_BUDGET_check_actor(case, member, budget_request, allowed, code):
    decision = check_actor(member=member, budget_request=budget_request, proposal_id=7, doing="close a budget request")
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-BUDGET", code), case
    if code == "not-a-member":
        assert decision.reason == "only active working group members close a budget request"
