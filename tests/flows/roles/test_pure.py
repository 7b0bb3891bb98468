"""The pure parts of the roles flows: guides within Discord's limit, reminder arithmetic, the
member's follow-up texts and the operator's instructions for platform refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows.roles.handlers import _describe
from flows.roles.plan import explain
from flows.roles.training import MAX_REMINDERS, due_reminder, guide_platforms, render_guide

SENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("platform", ["discord", "discourse"])
@pytest.mark.parametrize("button", [True, False])
def test_each_guide_fits_one_discord_message(platform, button):
    title, text = render_guide(
        platform, username="x" * 32, decision_ref="roles-change:12@20260301T120000Z", button=button
    )
    assert title and len(f"**{title}**\n{text}") <= 2000
    assert ("Press **Acknowledge**" in text) is button


def test_there_is_a_guide_per_community_platform():
    assert set(guide_platforms()) >= {"discord", "discourse"}
    with pytest.raises(LookupError, match="no moderation guide for 'slack'"):
        render_guide("slack", username="x", decision_ref="d", button=True)


@pytest.mark.parametrize(
    "days, already, due",
    [
        (13.9, 0, 0),
        (14, 0, 1),
        (20, 1, 0),
        (28, 1, 2),
        (28, 0, 2),
        (100, 2, 3),
        (100, 3, 0),
    ],
)
def test_R_TRAIN_reminder_due(days, already, due):
    assert due_reminder(SENT, already, now=SENT + timedelta(days=days), every_days=14) == due
    assert due <= MAX_REMINDERS


OPTIONS = {"action": "revoke", "role": "admin", "platform": "discord", "person": "dario_fenwick"}


@pytest.mark.parametrize(
    "result, expected",
    [
        (
            {"status": "refused", "part": "person", "reason": "unknown person 'x'"},
            "Not changed (revoke admin on discord from dario_fenwick): unknown person 'x' (the person is the problem).",
        ),
        (
            {
                "status": "refused",
                "ruling": "R-ADMIN-2",
                "reason": "discord has 1 admin",
                "resulting_state": {"discord": {"admin": ["cleo_marsh"]}, "discourse": {"admin": ["a", "b"]}},
            },
            "Refused by R-ADMIN-2 (revoke admin on discord from dario_fenwick): discord has 1 admin. "
            "Admins it would have left: discord: cleo_marsh; discourse: a, b. Nothing was sent.",
        ),
        (
            {"status": "unchanged", "decision": "d"},
            "Nothing to do (revoke admin on discord from dario_fenwick): the ledger and the platform already agree.",
        ),
    ],
)
def test_the_members_follow_up(result, expected):
    assert _describe(result, OPTIONS) == expected


def test_platform_refusals_carry_the_fix():
    assert "CHARTERFLOW_DISCOURSE_API_USERNAME" in explain("discourse", "staff list not found (HTTP 404)")
    assert "Manage Roles" in explain("discord", "refused (403, code 50013 Missing Permissions)")
    assert explain("discord", "HTTP 404") == "HTTP 404"  # only the known cases get a hint
