"""R-APP-1/2/3 as pure functions (rules/applications.py): one table row per decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.applications import (
    TOPIC_TEMPLATE,
    AccountLookup,
    ApplicationForm,
    ApplicationSource,
    ConfirmationAttempt,
    PriorRecord,
    check_account,
    check_application_source,
    check_confirmation,
    check_duplicates,
    check_expiry,
    check_form,
    confirmation_deadline,
    missing_answers,
    parse_forum_application,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def form(forum="avery_quill", discord=None, why="I moderate a meetup.", experience="Five years.", **others):
    return ApplicationForm(usernames={"discourse": forum, "discord": discord, **others}, why=why, experience=experience)


@pytest.mark.parametrize(
    ("case", "application", "code", "fields"),
    [
        ("complete, Forum only", form(), "complete", ()),
        ("complete, Discord only", form(forum=None, discord="bram_tolliver"), "complete", ()),
        ("complete, another platform only", form(forum=None, matrix="@cleo:example.org"), "complete", ()),
        ("no account named", form(forum=None), "no-username", ("usernames",)),
        ("empty usernames are not names", form(forum="", discord=""), "no-username", ("usernames",)),
        ("blank answer", form(why="  \n "), "missing-answers", ("why",)),
        ("both answers missing", form(why="", experience=""), "missing-answers", ("why", "experience")),
        ("answer over the charter's length", form(experience="x" * 4001), "too-long", ("experience",)),
        ("answer at the charter's length", form(experience="x" * 4000), "complete", ()),
        ("username over the charter's length", form(discord="d" * 65), "too-long", ("discord",)),
        (
            "missing comes before too long",
            form(why="", experience="x" * 4001),
            "missing-answers",
            ("why", "experience"),
        ),
        ("naming comes first", form(forum=None, why=""), "no-username", ("usernames", "why")),
    ],
)
def test_R_APP_1_check_form(charter, case, application, code, fields):
    check = check_form(application, limits=charter.application)
    assert check.decision.ruling == "R-APP-1"
    assert check.decision.code == code, case
    assert check.decision.allowed is (code == "complete")
    assert tuple(p.field for p in check.problems) == fields


def test_R_APP_1_too_long_carries_length_and_limit(charter):
    check = check_form(form(why="w" * 4005), limits=charter.application)
    problem = check.problem("why")
    assert (problem.code, problem.length, problem.limit) == ("too-long", 4005, 4000)
    assert check.problem("experience") is None
    assert check.decision.reason == "an answer or username is longer than the charter allows"


def lookup(**changes):
    base = dict(
        platform="discord", label="Discord", username="dario_fenwick", served=True, found_id="901", proven_id=None
    )
    return AccountLookup(**{**base, **changes})


@pytest.mark.parametrize(
    ("case", "found", "allowed", "ruling", "code"),
    [
        ("found and served", lookup(), True, "R-APP-2", "found"),
        ("the proven account is the one named", lookup(proven_id="901"), True, "R-APP-2", "found"),
        ("platform not served", lookup(served=False, found_id=None), False, "R-APP-2", "discord-not-served"),
        ("no such account", lookup(found_id=None), False, "R-APP-1", "discord-unknown-user"),
        ("someone else applied for it", lookup(proven_id="777"), False, "R-APP-2", "not-own-account"),
    ],
)
def test_R_APP_2_check_account(case, found, allowed, ruling, code):
    decision = check_account(found)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, ruling, code), case


def test_R_APP_1_unknown_account_is_named_in_the_reason():
    assert check_account(lookup(found_id=None)).reason == ("there is no Discord account called 'dario_fenwick'")


@pytest.mark.parametrize(
    ("case", "prior", "allowed", "code"),
    [
        ("nobody known", PriorRecord(), True, "new"),
        ("known person, nothing open", PriorRecord(owners=1), True, "new"),
        ("accounts of two people", PriorRecord(owners=2), False, "accounts-of-several-people"),
        (
            "a second open application",
            PriorRecord(owners=1, open_application=4, open_status="voting"),
            False,
            "duplicate",
        ),
        ("an active member", PriorRecord(owners=1, active_member=True), False, "already-member"),
        (
            "open application before membership",
            PriorRecord(owners=1, open_application=4, active_member=True),
            False,
            "duplicate",
        ),
    ],
)
def test_R_APP_3_check_duplicates(case, prior, allowed, code):
    decision = check_duplicates(prior)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-APP-3", code), case


def test_R_APP_3_duplicate_points_to_the_open_application():
    decision = check_duplicates(PriorRecord(owners=1, open_application=4, open_status="open"))
    assert decision.reason == "an application is already open (application 4)"
    assert decision.evidence == {"open": 4, "status": "open"}


@pytest.mark.parametrize(
    ("case", "attempt", "allowed", "code"),
    [
        ("web page, open", ConfirmationAttempt(named=True, account_id="901"), True, "confirm"),
        (
            "button by the named account",
            ConfirmationAttempt(named=True, account_id="901", pressed_by="901"),
            True,
            "confirm",
        ),
        (
            "button by someone else",
            ConfirmationAttempt(named=True, account_id="901", pressed_by="902"),
            False,
            "not-named-account",
        ),
        ("link of an account not named", ConfirmationAttempt(named=False), False, "foreign-link"),
        ("confirmed before", ConfirmationAttempt(named=True, status="voting"), True, "already"),
        ("expired", ConfirmationAttempt(named=True, status="expired"), False, "expired"),
        ("withdrawn", ConfirmationAttempt(named=True, status="withdrawn"), False, "withdrawn"),
        ("refused", ConfirmationAttempt(named=True, status="refused"), False, "refused"),
    ],
)
def test_R_APP_2_check_confirmation(case, attempt, allowed, code):
    decision = check_confirmation(attempt)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-APP-2", code), case


@pytest.mark.parametrize(
    ("case", "age", "expired"),
    [
        ("just submitted", timedelta(0), False),
        ("a moment before the deadline", timedelta(days=7) - timedelta(seconds=1), False),
        ("at the deadline", timedelta(days=7), True),
        ("long after", timedelta(days=30), True),
    ],
)
def test_R_APP_2_check_expiry(charter, case, age, expired):
    submitted = NOW - age
    decision = check_expiry(submitted, now=NOW, charter=charter)
    assert decision.allowed is not expired, case
    assert decision.ruling == "R-APP-2"
    assert decision.evidence["deadline"] == confirmation_deadline(submitted, charter=charter)
    if expired:
        assert decision.reason == "not confirmed from every named account within 7 days"


def test_R_APP_1_forum_topic_reads_missing_answers_like_the_form():
    answers = parse_forum_application(
        TOPIC_TEMPLATE.replace("<!-- Replace this comment with your answer. -->", "I run the local meetup.")
    )
    assert answers.missing == ("experience",) == missing_answers(why=answers.why, experience="")
    assert answers.why == "I run the local meetup."


@pytest.mark.parametrize(
    ("case", "source", "allowed", "code", "said"),
    [
        ("the form or a served platform", ApplicationSource(served=True), True, "read", "served source"),
        ("a platform not served", ApplicationSource(served=False), False, "unknown-source", "not taken from there"),
        (
            "a plugin's command without its account",
            ApplicationSource(served=True, readable=False),
            False,
            "unknown-source",
            "which account",
        ),
        (
            "not served is said first",
            ApplicationSource(served=False, readable=False),
            False,
            "unknown-source",
            "not taken from there",
        ),
    ],
)
def test_R_APP_1_check_application_source(case, source, allowed, code, said):
    decision = check_application_source(source)
    assert (decision.allowed, decision.ruling, decision.code) == (allowed, "R-APP-1", code), case
    assert said in decision.reason, case
