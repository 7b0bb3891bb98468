"""The `charter-what-if` flow: an operator asks the charter a question from the Prefect UI.

Same cases and answers as `charterflow rules what-if` (rules/README.md); the answer is also
shown as a markdown artifact on the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run

from charterflow.charter import load_configured_charter
from flows.privacy import publish_artifact
from rules import CaseError, evaluate_case, parse_case


@task(name="evaluate-case")
def evaluate(case: dict[str, Any], charter_file: str | None) -> dict[str, Any]:
    """Decide the case with the rules layer (pure)."""
    charter = load_configured_charter(Path(charter_file) if charter_file else None)
    return evaluate_case(case, charter=charter)


def answer_markdown(case: dict[str, Any], answer: dict[str, Any]) -> str:
    """A readable table of the answer for the run's artifact."""
    lines = [f"# What-if: {case.get('case', '?')}", "", "| field | value |", "| --- | --- |"]
    for key, value in answer.items():
        if key in {"evidence", "violations", "warnings", "refused", "counts", "lines"}:
            continue
        lines.append(f"| {key} | {str(value).replace('|', '/')} |")
    for line in answer.get("lines", []):  # R-ADMIN-2: who counts on each platform, who does not
        lines.append(f"| admins | {line.replace('|', '/')} |")
    for key in ("violations", "warnings", "refused"):
        for item in answer.get(key, []):
            who = item.get("subject") or item.get("voter")
            lines.append(
                f"| {key[:-1] if key != 'refused' else 'refused vote'} | {item['ruling']} {who}: {item['reason']} |"
            )
    return "\n".join(lines)


def _run_name() -> str:
    case = flow_run.parameters.get("case") or {}
    kind = case.get("case") if isinstance(case, dict) else None
    return f"what-if-{kind if isinstance(kind, str) else 'case'}"


@flow(name="charter-what-if", flow_run_name=_run_name, log_prints=True)
def what_if(case: dict[str, Any], charter_file: str | None = None) -> dict[str, Any]:
    """Evaluate one what-if case (see rules/README.md for the case kinds) and publish the answer.

    A malformed case fails the run with the same one-line message the CLI prints.
    """
    try:
        parse_case(case)  # refuse a malformed case before any task runs
    except CaseError as exc:
        raise ValueError(f"malformed case: {exc}") from None
    answer = evaluate(case, charter_file)
    publish_artifact(
        key="what-if-answer",
        kind="markdown",
        content=answer_markdown(case, answer),
        description=f"charter answer for a {case.get('case')} case",
    )
    return answer
