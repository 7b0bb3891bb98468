"""`charterflow guides check|publish|status` and `charterflow training schedule|list` (R-GUIDE),
on the seeded working group's sandboxes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from charterflow.guides_cli import app
from flows.guides.deploy import deployments
from flows.serve import deployments as served
from tests.support.cli import cli_with
from tests.support.membership import NOW


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("CHARTERFLOW_GUIDES_DISCOURSE_CHANNEL", "General")
    monkeypatch.setenv("CHARTERFLOW_GUIDES_DISCORD_CHANNEL", "general")
    return cli_with(app)


def test_guides_cli_check_publish_status_and_training(world, guides_folder, cli):
    runner = CliRunner()
    checked = runner.invoke(cli, ["guides", "check"])
    assert checked.exit_code == 0, checked.output
    assert "4 guide(s)" in checked.output and "0 broken" in checked.output

    before = runner.invoke(cli, ["guides", "status"])
    assert before.exit_code == 0 and "not published" in before.output

    published = runner.invoke(cli, ["guides", "publish"])
    assert published.exit_code == 0, published.output
    assert published.output.count("published") == 8
    assert "newcomers on discord: pointed at 4 guide(s)" in published.output

    (guides_folder / "welcome.md").write_text(
        (guides_folder / "welcome.md").read_text().replace("Welcome!", "Welcome, and thank you for coming!")
    )
    (guides_folder / "broken.md").write_text("---\ntitle: Broken\nplatforms: discord\n---\nText\n")
    again = runner.invoke(cli, ["guides", "publish"])
    assert again.exit_code == 1
    assert again.output.count("edited") == 2 and again.output.count("unchanged") == 6
    assert "error: broken.md:4: the front matter has no 'audience' (not published)" in again.output

    status = runner.invoke(cli, ["guides", "status", "--json"])
    assert status.exit_code == 0
    assert '"state": "outdated"' not in status.output and status.output.count('"current"') == 8

    at = (NOW + timedelta(days=5)).strftime("%Y-%m-%dT%H:%MZ")
    first = runner.invoke(cli, ["training", "schedule", "welcome", "--at", at, "--location", "Stage"])
    assert first.exit_code == 0, first.output
    assert "scheduled: Training: Welcome to the Django community" in first.output
    second = runner.invoke(cli, ["training", "schedule", "welcome", "--at", at, "--location", "Stage"])
    assert "was already scheduled" in second.output
    listed = runner.invoke(cli, ["training", "list"])
    assert "welcome" in listed.output and "discord, discourse" in listed.output
    bad = runner.invoke(cli, ["training", "schedule", "welcome", "--at", "next tuesday"])
    assert bad.exit_code == 2 and "--at: 'next tuesday' is not a date" in bad.output


def test_guides_deployments_are_served():
    found = {f"{d.flow_name}/{d.name}": d for d in deployments()}
    assert sorted(found) == [
        "guides-publish/daily",
        "guides-publish/operator",
        "training-reminders/hourly",
        "training-schedule/operator",
    ]
    assert found["guides-publish/daily"].schedules[0].schedule.cron == "0 6 * * *"
    assert set(found) <= {f"{d.flow_name}/{d.name}" for d in served()}
