"""The bot token never shows: reprs, logs, exceptions, the sandbox state. And the
`charterflow discord register-commands` command (built on a typer app of the test's own)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import typer
from pydantic import SecretStr
from typer.testing import CliRunner

from charterflow.discord_cli import app as discord_cli
from connectors.base import Role
from connectors.discord.client import MissingPermissions
from connectors.discord.settings import DiscordSettings
from connectors.errors import ConfigError
from tests.support.discord import COMMAND_NAMES


def test_the_token_never_appears(discord: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = discord.sandbox.token
    c = discord.connect()
    cleo = c.find_user("cleo_marsh")
    c.grant(cleo, Role.moderator(), reason="secret check")
    with pytest.raises(MissingPermissions) as refused:
        c.grant(cleo, Role.group("owners"), reason="secret check")
    bad = discord.connect(token=SecretStr(token + "x"))
    with pytest.raises(ConfigError) as unauthorized:
        bad.find_user("cleo_marsh")
    texts = [
        repr(c),
        str(c.settings),
        repr(c.settings),
        repr(c.client),
        repr(c.client.policy),
        repr(c.verifier),
        str(refused.value),
        str(unauthorized.value),
        caplog.text,
        json.dumps(httpx.get(f"{discord.url}/_sandbox/state").json()),
        str(c.settings.model_dump()),
    ]
    for text in texts:
        assert token not in text
    assert "**********" in repr(c.settings)


def test_settings_errors_name_the_variables_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOKEN", "PUBLIC_KEY", "APPLICATION_ID", "GUILD_ID"):
        monkeypatch.delenv(f"CHARTERFLOW_DISCORD_{name}", raising=False)
    monkeypatch.setenv("CHARTERFLOW_DISCORD_TOKEN", "a token with spaces")
    monkeypatch.setenv("CHARTERFLOW_DISCORD_GUILD_ID", "not-a-snowflake")
    with pytest.raises(ConfigError) as err:
        DiscordSettings.load(_env_file=None)
    text = str(err.value)
    for name in ("TOKEN", "PUBLIC_KEY", "APPLICATION_ID", "GUILD_ID"):
        assert f"CHARTERFLOW_DISCORD_{name}" in text
    assert "a token with spaces" not in text and "not-a-snowflake" not in text


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """charterflow (test shell)."""

    app.add_typer(discord_cli)
    return app


def test_register_commands_cli_against_the_sandbox(discord: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in discord.sandbox.client_info(discord.url)["env"].items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(_app(), ["discord", "register-commands"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [c["name"] for c in out["commands"]] == COMMAND_NAMES
    assert discord.state()["commands"][discord.sandbox.seed.guild_id] == COMMAND_NAMES
    dry = CliRunner().invoke(_app(), ["discord", "register-commands", "--dry-run", "--scope", "global"])
    assert dry.exit_code == 0 and json.loads(dry.stdout)["scope"] == "global"


def test_register_commands_cli_errors_are_one_line(discord: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = discord.sandbox.client_info(discord.url)["env"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHARTERFLOW_DISCORD_TOKEN", "wrong-token-for-the-cli")
    result = CliRunner().invoke(_app(), ["discord", "register-commands"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "CHARTERFLOW_DISCORD_TOKEN" in result.stderr and "wrong-token-for-the-cli" not in result.stderr
    assert "Traceback" not in result.output
    monkeypatch.delenv("CHARTERFLOW_DISCORD_GUILD_ID")
    missing = CliRunner().invoke(_app(), ["discord", "register-commands"], env={"CHARTERFLOW_DISCORD_GUILD_ID": ""})
    assert missing.exit_code == 2 and "CHARTERFLOW_DISCORD_GUILD_ID" in missing.stderr
    scope = CliRunner().invoke(_app(), ["discord", "register-commands", "--scope", "everywhere"])
    assert scope.exit_code == 2 and "--scope" in scope.stderr
