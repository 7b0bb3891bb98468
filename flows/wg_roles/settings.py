"""Settings of the appointment flows (``CHARTERFLOW_WG_ROLES_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WgRolesSettings(BaseSettings):
    """Who confirms the CoC WG's choice of Liaison, and how long its link works."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_WG_ROLES_", env_file=".env", extra="ignore")

    coc_contact: str | None = Field(
        default=None,
        description=(
            "E-mail address of the CoC WG's contact, who confirms the CoC WG Liaison through a "
            "signed link (R-ROLE-APPOINT); unset: the CoC Liaison cannot be named."
        ),
    )
    link_days: int = Field(default=14, gt=0, le=90, description=("Days the CoC contact's confirmation link works."))
