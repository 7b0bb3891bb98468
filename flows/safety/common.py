"""What the safety flows share: their settings, the button prefix and messages rendered from
``templates/safety``.

Settings (environment, prefix ``CHARTERFLOW_SAFETY_``):

================ ==============================================================================
``COC_EMAIL``    the CoC WG's e-mail address: a CoC referral is also e-mailed there (SMTP from
                 ``CHARTERFLOW_SMTP_*``); unset: the liaison's direct message only
``COC_LIAISON``  the CoC Liaison's handle in the ledger, used when the ledger names no holder of
                 the ``coc_liaison`` WG role (R-ROLE-COC)
``COC_LINK_DAYS`` how long the liaison's outcome link (where there are no buttons) works after
                 the referral (default 30 days)
================ ==============================================================================

The charter's ``[safety]`` section holds the numbers (reminder hours, rate limit, text limit).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.presentation import templates

ACTOR = "flow:safety"
BUTTON_PREFIX = "cfs:"
# The Discord message command (an application command of type 3, registered with the others).
MESSAGE_COMMAND = "Report to moderators"
# The CoC WG's outcomes the liaison records with a button (``cfs:coc:<id>:<outcome>``); the
# label is what the ledger keeps. Another outcome: ``charterflow safety coc-outcome --text``.
COC_OUTCOMES = {
    "no_violation": "No violation found",
    "warning": "A private warning",
    "suspension": "A temporary suspension",
    "ban": "A permanent ban",
}


class SafetySettings(BaseSettings):
    """``CHARTERFLOW_SAFETY_*`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_SAFETY_", env_file=".env", extra="ignore")
    coc_email: str | None = Field(
        default=None, description=("The CoC WG's e-mail address; a CoC referral is also e-mailed there (R-SAFE-2).")
    )
    coc_liaison: str | None = Field(
        default=None, description=("The CoC Liaison's handle, when the ledger names no holder of the coc_liaison role.")
    )
    coc_link_days: int = Field(
        default=30, ge=1, le=365, description="Days the liaison's outcome link works after the referral (R-SAFE-2)."
    )


def settings() -> SafetySettings:
    """The settings in force (read each time: tests and operators change the environment)."""
    return SafetySettings()


def render(name: str, **values: Any) -> str:
    """Render ``templates/safety/<name>.md.j2``: the first line is the title."""
    return templates.get_template(f"safety/{name}.md.j2").render(**values).strip()
