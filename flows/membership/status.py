"""What the applicant who used the public form sees on its status page (R-APP-4): every outcome
of their application, read from the ledger (the inbox event of the submission, the intake's
record, the application's status and its last eligibility check).

The page is ``/apply/status/<submission id>``: the id is server-generated, random and shown only
to the person who sent the form, so it is the capability to read this one application's state.
The view names no other person and no answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from ledger import repo
from ledger.db import Ledger
from ledger.models import Application, InboxEvent
from rules.applications import ApplicationProgress, application_state

GROUP = "Online Community Working Group"


@dataclass(frozen=True, kw_only=True)
class StatusView:
    """One state of an application as the applicant reads it."""

    state: str  # received | waiting | refused | checking | voting | approved | not-approved | expired | unknown
    heading: str
    text: str
    ruling: str | None = None
    final: bool = False


_REFUSED_HEADING = "Your application was not accepted"


def _refusal(reason: str, ruling: str | None, code: str | None, open_id: int | None) -> StatusView:
    text = f"It was not accepted because {reason}."
    if code == "duplicate" and open_id is not None:
        text += (
            f" Your open application is application {open_id}; it continues where it "
            "stands and you will hear from us when it moves on."
        )
    elif code == "already-member":
        text += " Nothing else is needed: you are a member of the working group."
    else:
        text += " You are welcome to apply again with the right details."
    return StatusView(state="refused", heading=_REFUSED_HEADING, text=text, ruling=ruling, final=True)


def describe_submission(ledger: Ledger, *, submission: str, confirm_days: int) -> StatusView | None:
    """The state of the form submission ``submission``; None when no such submission exists."""
    with ledger.read() as session:
        event = session.scalar(select(InboxEvent).where(InboxEvent.dedupe_key == f"form:{submission}"))
        if event is None:
            return None
        result = event.result_ref or ""
        if event.processed_at is None:
            return StatusView(
                state="received",
                heading="Your application is received",
                text="We are checking it now. Reload this page in a minute to see the next step.",
            )
        record = repo.effect_get(session, key=f"intake:form:inbox:{event.id}")
        if result.startswith("refused:"):
            ref = (record or {}).get("ref") or {}
            about = (record or {}).get("about") or ""
            open_id = int(about.split(":")[1]) if about.startswith("application:") else None
            parts = result.split(":")
            return _refusal(
                ref.get("reason") or "it did not meet the charter's application rules",
                ref.get("ruling") or (parts[1] if len(parts) > 1 else None),
                ref.get("code") or (parts[2] if len(parts) > 2 else None),
                open_id,
            )
        if not result.startswith("application:"):
            return StatusView(
                state="unknown",
                heading="Your application is received",
                text="It is with the working group; you will hear from us on the platforms you named.",
            )
        app = session.get_one(Application, int(result.split(":")[1]))
        return _application_view(app, confirm_days=confirm_days)


def _application_view(app: Application, *, confirm_days: int) -> StatusView:
    """The page for ``app``: the state and ruling ``rules.applications.application_state``
    decides, worded for the applicant."""
    last = app.eligibility[-1] if app.eligibility else None
    state = application_state(
        ApplicationProgress(
            status=app.status.value,
            check_outcome=last.outcome.value if last is not None else None,
            check_ruling=last.ruling if last is not None else None,
            check_reason=last.reason if last is not None else None,
        )
    )
    ref = f"application {app.id}"
    expires = (app.submitted_at + timedelta(days=confirm_days)).date().isoformat()
    words = {
        "waiting": (
            "waiting",
            "Please confirm your application",
            f"We sent a message to each account you named ({ref}). Please "
            f"confirm the application from each of them by {expires}; "
            "without that it expires.",
        ),
        "unknown": (
            "checking",
            "We could not check eligibility yet",
            f"Confirmed, but {state.reason}. The working group will check again; you will hear from us.",
        ),
        "checking": ("checking", "Your application is confirmed", f"Thank you. We are checking eligibility ({ref})."),
        "voting": (
            "voting",
            "The working group is voting",
            f"Your application is eligible and the members are voting on it "
            f"({ref}). You will hear the result here and on the platforms you "
            "named.",
        ),
        "approved": (
            "approved",
            "Welcome: your application is approved",
            f"The members of the {GROUP} approved your application ({ref}). "
            "A welcome message with the next steps is in your messages on "
            "the platforms you named.",
        ),
        "not-approved": (
            "not-approved",
            "Your application was not approved",
            f"The members voted on your application ({ref}) and it was not "
            "approved this time. Thank you for offering your time; you are "
            "welcome to apply again later.",
        ),
        "expired": (
            "expired",
            "Your application has expired",
            f"It was not confirmed from every account it named within {confirm_days} days ({ref}). "
            "You are welcome to apply again.",
        ),
        "refused": (
            "refused",
            "Not eligible yet",
            f"We checked the charter's eligibility rule and it is not met yet: "
            f"{state.reason}. This is not a judgement of you or your work; you are "
            "welcome to apply again when that changes.",
        ),
    }
    status = app.status.value
    shown, heading, text = words.get(state.code, (status, f"Your application is {status}", f"{ref} is {status}."))
    final = state.code in ("approved", "not-approved", "expired", "refused", "other")
    return StatusView(state=shown, heading=heading, text=text, ruling=state.ruling, final=final)
