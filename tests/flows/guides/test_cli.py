"""`charterflow guides check|publish|status` and `charterflow training schedule|list` (R-GUIDE),
on the seeded working group's sandboxes."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
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
    assert "5 guide(s)" in checked.output and "0 broken" in checked.output

    before = runner.invoke(cli, ["guides", "status"])
    assert before.exit_code == 0 and "not published" in before.output

    published = runner.invoke(cli, ["guides", "publish"])
    assert published.exit_code == 0, published.output
    assert published.output.count("published") == 10
    assert "newcomers on discord: pointed at 5 guide(s)" in published.output
    assert "onboarding on discord: 5 guide(s) in the onboarding of guild" in published.output

    (guides_folder / "welcome.md").write_text(
        (guides_folder / "welcome.md").read_text().replace("Welcome!", "Welcome, and thank you for coming!")
    )
    (guides_folder / "broken.md").write_text("---\ntitle: Broken\nplatforms: discord\n---\nText\n")
    again = runner.invoke(cli, ["guides", "publish"])
    assert again.exit_code == 1
    assert again.output.count("edited") == 2 and again.output.count("unchanged") == 8
    assert "error: broken.md:4: the front matter has no 'audience' (not published)" in again.output

    status = runner.invoke(cli, ["guides", "status", "--json"])
    assert status.exit_code == 0
    assert '"state": "outdated"' not in status.output and status.output.count('"current"') == 11

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


def test_guides_naming_a_platform_without_connector_are_kept_and_skipped_there(world, guides_folder, cli):
    # A well-formed platform with no connector installed (as `matrix` without its plugin): kept,
    # published elsewhere, one line in the publish report and in `guides status`.
    (guides_folder / "fediverse.md").write_text(
        "---\ntitle: Following the community on Mastodon\nplatforms: mastodon, discourse\n"
        "audience: everyone\n---\nFollow the community's account for news.\n"
    )
    # A malformed name is still refused by name and line.
    (guides_folder / "typo.md").write_text("---\ntitle: T\nplatforms: discord, disc ord!\naudience: everyone\n---\nT\n")
    runner = CliRunner()
    checked = runner.invoke(cli, ["guides", "check"])
    assert checked.exit_code == 1 and "mastodon: no connector installed" in checked.output
    assert "error: typo.md:3: malformed platform name 'disc ord!'" in checked.output

    published = runner.invoke(cli, ["guides", "publish", "--json"])
    assert published.exit_code == 1
    out = json.loads(published.stdout[: published.stdout.rindex("}") + 1])
    assert out["skipped"] == [
        {
            "platform": "mastodon",
            "reason": "no connector installed",
            "guides": ["fediverse"],
            "line": "mastodon: no connector installed",
        }
    ]
    rows = {(r["guide"], r["platform"]): r["change"] for r in out["guides"]}
    assert rows[("fediverse", "discourse")] == "published" and ("fediverse", "mastodon") not in rows
    assert rows[("typo.md", "-")] == "refused"
    text = runner.invoke(cli, ["guides", "publish"])
    assert "mastodon: no connector installed (guides kept, skipped there: fediverse)" in text.output

    status = runner.invoke(cli, ["guides", "status"])
    assert status.exit_code == 0 and "mastodon: no connector installed" in status.output
    [line] = [ln for ln in status.output.splitlines() if ln.split()[:2] == ["fediverse", "mastodon"]]
    assert "no connector installed" in line


def test_guides_publish_names_a_refused_step_and_exits_1_once_the_rest_is_done(world, guides_folder, cli):
    [bot_role] = [r for r in world.discord_state()["roles"] if r.get("bot_role")]
    httpx.post(
        f"{world.discord_url}/_sandbox/roles",
        json={"role": bot_role["name"], "permissions": int(bot_role["permissions"]) & ~(1 << 5)},  # no Manage Server
    ).raise_for_status()
    published = CliRunner().invoke(cli, ["guides", "publish"])
    assert published.exit_code == 1
    assert published.output.count("published") == 10
    assert "newcomers on discourse: pointed at" in published.output and "newcomers on discord" not in published.output
    [line] = [ln for ln in published.output.splitlines() if ln.startswith("error: ")]
    assert line.startswith("error: guides-publish: discord welcome refused: ") and "Manage Server" in line
    assert "discord onboarding refused: " in line
