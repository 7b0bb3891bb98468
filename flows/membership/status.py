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
from ledger.models import Application, ApplicationStatus, EligibilityOutcome, InboxEvent

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


def _confirmed_view(app: Application, ref: str) -> StatusView:
    """A confirmed application: being checked, or its check could not be made yet."""
    last = app.eligibility[-1] if app.eligibility else None
    if last is not None and last.outcome == EligibilityOutcome.UNKNOWN:
        return StatusView(
            state="checking",
            heading="We could not check eligibility yet",
            text=f"Confirmed, but {last.reason}. The working group will check again; you will hear from us.",
            ruling=last.ruling,
        )
    return StatusView(
        state="checking",
        heading="Your application is confirmed",
        text=f"Thank you. We are checking eligibility ({ref}).",
        ruling="R-ELIG-1",
    )


def _refused_view(app: Application) -> StatusView:
    """A refused application, with the last check's reason."""
    last = app.eligibility[-1] if app.eligibility else None
    reason = last.reason if last is not None else "the charter's eligibility rule is not met"
    return StatusView(
        state="refused",
        heading="Not eligible yet",
        text=f"We checked the charter's eligibility rule and it is not met yet: "
        f"{reason}. This is not a judgement of you or your work; you are "
        "welcome to apply again when that changes.",
        ruling=last.ruling if last is not None else "R-ELIG-1",
        final=True,
    )


def _application_view(app: Application, *, confirm_days: int) -> StatusView:
    status = app.status
    ref = f"application {app.id}"
    if status == ApplicationStatus.OPEN:
        expires = (app.submitted_at + timedelta(days=confirm_days)).date().isoformat()
        return StatusView(
            state="waiting",
            heading="Please confirm your application",
            text=f"We sent a message to each account you named ({ref}). Please "
            f"confirm the application from each of them by {expires}; "
            "without that it expires.",
            ruling="R-APP-2",
        )
    if status == ApplicationStatus.CONFIRMED:
        return _confirmed_view(app, ref)
    if status == ApplicationStatus.VOTING:
        return StatusView(
            state="voting",
            heading="The working group is voting",
            text=f"Your application is eligible and the members are voting on it "
            f"({ref}). You will hear the result here and on the platforms you "
            "named.",
            ruling="R-VOTE-APPROVE",
        )
    if status == ApplicationStatus.APPROVED:
        return StatusView(
            state="approved",
            heading="Welcome: your application is approved",
            text=f"The members of the {GROUP} approved your application ({ref}). "
            "A welcome message with the next steps is in your messages on "
            "the platforms you named.",
            ruling="R-VOTE-APPROVE",
            final=True,
        )
    if status == ApplicationStatus.REJECTED:
        return StatusView(
            state="not-approved",
            heading="Your application was not approved",
            text=f"The members voted on your application ({ref}) and it was not "
            "approved this time. Thank you for offering your time; you are "
            "welcome to apply again later.",
            ruling="R-VOTE-APPROVE",
            final=True,
        )
    if status == ApplicationStatus.EXPIRED:
        return StatusView(
            state="expired",
            heading="Your application has expired",
            text=f"It was not confirmed from every account it named within "
            f"{confirm_days} days ({ref}). You are welcome to apply again.",
            ruling="R-APP-2",
            final=True,
        )
    if status == ApplicationStatus.REFUSED:
        return _refused_view(app)
    return StatusView(
        state=status.value, heading=f"Your application is {status.value}", text=f"{ref} is {status.value}.", final=True
    )
