"""The charter as data and pure functions. Imports nothing of ours; no I/O but reading a
charter file; no clock: ``now`` is always a parameter. Every decision cites a ruling id."""

from __future__ import annotations

from rules.admins import (
    AdminCount,
    EndOfMembership,
    admin_revocation,
    check_admin_change,
    check_admins,
    count_admins,
    end_of_membership,
    short_if_gone,
)
from rules.ballots import Tally, check_vote, closes_at, majority, quorum, snapshot_electorate, tally, voting_members
from rules.board import needs_board
from rules.charter import Charter, default_charter, load_charter, parse_charter
from rules.decision import Decision, Finding
from rules.eligibility import (
    ActivityEvidence,
    Applicant,
    DiscordEvidence,
    DiscourseEvidence,
    check_activity,
    check_discord,
    check_discourse,
    decide_eligibility,
)
from rules.errors import CaseError, CharterFileError
from rules.ideas import check_idea_transition
from rules.plan import Assignment, Change, Plan, check_plan, diff, plan_roles
from rules.roles import WgRoles, check_roles
from rules.rulings import RULINGS
from rules.terms import TermWindow, check_opt_in, next_term, reminders, reminders_due, term_status, term_window
from rules.whatif import evaluate_case, parse_case

__all__ = [
    "AdminCount",
    "EndOfMembership",
    "admin_revocation",
    "count_admins",
    "end_of_membership",
    "short_if_gone",
    "ActivityEvidence",
    "Applicant",
    "check_activity",
    "Assignment",
    "CaseError",
    "Change",
    "Plan",
    "check_plan",
    "diff",
    "plan_roles",
    "Charter",
    "CharterFileError",
    "Decision",
    "DiscordEvidence",
    "DiscourseEvidence",
    "Finding",
    "RULINGS",
    "Tally",
    "TermWindow",
    "WgRoles",
    "check_admin_change",
    "check_admins",
    "check_discord",
    "check_discourse",
    "check_idea_transition",
    "check_opt_in",
    "check_roles",
    "check_vote",
    "closes_at",
    "decide_eligibility",
    "default_charter",
    "evaluate_case",
    "load_charter",
    "majority",
    "needs_board",
    "next_term",
    "parse_case",
    "parse_charter",
    "quorum",
    "reminders",
    "reminders_due",
    "snapshot_electorate",
    "tally",
    "term_status",
    "term_window",
    "voting_members",
]
