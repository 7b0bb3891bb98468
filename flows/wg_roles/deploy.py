"""This package's Prefect deployments (served by ``flows.serve``)."""

from __future__ import annotations

from flows.wg_roles.ballot import appoint_by_ballot
from flows.wg_roles.board import ask_board
from flows.wg_roles.coc import name_coc_liaison
from flows.wg_roles.vacancy import report_vacancies


def deployments() -> list:
    """The monthly vacancy report and the operator deployments of the three ways a WG role is
    filled (R-ROLE-APPOINT)."""
    tags = ["charterflow", "wg-roles"]
    return [
        report_vacancies.to_deployment(
            name="monthly",
            cron="0 9 1 * *",
            tags=tags,
            description="Reports the WG's vacant roles to the WG, monthly until filled (R-ROLE-APPOINT).",
        ),
        appoint_by_ballot.to_deployment(
            name="operator",
            tags=tags,
            description="Propose a Chair or Co-Chair: checked against R-ROLE-*, then a WG ballot.",
        ),
        name_coc_liaison.to_deployment(
            name="operator",
            tags=tags,
            description="Record the CoC WG's choice of Liaison; its contact confirms by a signed link.",
        ),
        ask_board.to_deployment(
            name="operator",
            tags=tags,
            description="Ask the DSF Board in Slack to name the Board Liaison (R-ROLE-BOARD).",
        ),
    ]
