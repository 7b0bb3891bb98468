"""The public report form (R-SAFE-1): no sign-in, CSRF as /apply, honeypot, per-IP rate limit,
oversized input refused clearly, one report per submission."""

from __future__ import annotations

import re

from flows import inbox
from flows.safety.handlers import FORM_ROUTE
from gateway.routers import report as report_form
from rules import default_charter
from tests.support.gateway import inbox_rows


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def fill(client, **fields) -> dict[str, str]:
    page = client.get("/report").text
    return {
        "submission": hidden(page, "submission"),
        "csrf": hidden(page, "csrf"),
        "platform": "discord",
        "target_kind": "message",
        "target": "https://discord.com/channels/1/2/3",
        "reason": "Insults aimed at a newcomer in #general.",
        "reporter": "",
        "website": "",
        **fields,
    }


def test_r_safe_1_a_report_is_stored_once_for_the_safety_flow(client, ledger) -> None:
    page = client.get("/report")
    assert page.status_code == 200 and "cf_csrf" in page.headers["set-cookie"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert inbox_rows(ledger) == []
    data = fill(client, coc="yes")
    first = client.post("/report", data=data)
    assert first.status_code == 200 and "your report was received" in first.text
    again = client.post("/report", data=data)  # a double click or a reload: one report
    assert again.status_code == 200
    (row,) = inbox_rows(ledger)
    assert (row.source, row.kind, row.route) == ("form", "report", report_form.FORM_ROUTE)
    assert row.payload["data"]["coc"] == "yes" and row.payload["data"]["target_kind"] == "message"
    # The client's address is kept only as a digest.
    assert "testclient" not in str(row.payload) and len(row.payload["attributes"]["ip_digest"]) == 24


def test_r_safe_1_the_form_routes_to_the_safety_handler() -> None:
    assert FORM_ROUTE == report_form.FORM_ROUTE and FORM_ROUTE in inbox.HANDLERS


def test_csrf_is_required(client, ledger) -> None:
    data = fill(client)
    assert client.post("/report", data={**data, "csrf": "1.deadbeef"}).status_code == 403
    client.cookies.clear()
    assert client.post("/report", data=data).status_code == 403
    assert inbox_rows(ledger) == []


def test_oversized_and_missing_input_is_refused_clearly(client, ledger) -> None:
    limit = default_charter().safety.max_text_chars
    long = client.post("/report", data=fill(client, reason="x" * (limit + 1)))
    assert long.status_code == 413 and f"the limit is {limit}" in long.text
    empty = client.post("/report", data=fill(client, reason="", target="", platform="nowhere"))
    assert empty.status_code == 422 and "Tell the moderators what happened" in empty.text
    huge = client.post("/report", data=fill(client, reason="y" * 200_000))
    assert huge.status_code == 413 and "too long" in huge.text
    assert client.post("/report", content=b"{}", headers={"content-type": "application/json"}).status_code == 415
    assert inbox_rows(ledger) == []


def test_honeypot_is_answered_but_not_stored(client, ledger) -> None:
    assert client.post("/report", data=fill(client, website="http://spam.example")).status_code == 200
    assert inbox_rows(ledger) == []


def test_r_safe_1_reports_are_rate_limited_per_ip(client, ledger) -> None:
    codes = [client.post("/report", data=fill(client)).status_code for _ in range(report_form.REPORT_RATE_LIMIT + 1)]
    assert codes == [200] * report_form.REPORT_RATE_LIMIT + [429]
    assert len(inbox_rows(ledger)) == report_form.REPORT_RATE_LIMIT


def test_r_safe_1_forum_flags_and_form_reports_have_their_routes() -> None:
    config = inbox.RoutingConfig()
    assert inbox.route_for(source="form", kind="report", attributes={}, config=config) == report_form.FORM_ROUTE
    flagged = {"event_type": "reviewable", "reviewable_type": "ReviewableFlaggedPost"}
    for kind in ("reviewable_created", "reviewable_score_updated"):  # Discourse has no flag webhook
        assert inbox.route_for(source="discourse", kind=kind, attributes=flagged, config=config) == "safety-flag"
    assert inbox.route_for(source="discourse", kind="flag_created", attributes={}, config=config) != "safety-flag"
