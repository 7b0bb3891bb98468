"""Outcome e-mail over real SMTP: the mailer against the loopback SMTP sandbox, its errors, the
inspector's Mail page, and `up` pointing everything at the sandbox when no SMTP host is set."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from charterflow.inspector.app import create_app
from charterflow.inspector.serve import Running
from charterflow.seed import build
from charterflow.settings import Settings
from charterflow.up import sandbox_env, sandbox_spec
from connectors.email import SmtpMailer, SmtpSandbox, SmtpSettings
from connectors.errors import RetriableError
from tests.support.net import free_port


def _mailer(port: int) -> SmtpMailer:
    return SmtpMailer(
        settings=SmtpSettings(
            _env_file=None, host="127.0.0.1", port=port, tls="none", sender="wg@example.org", password="invented-secret"
        )
    )


def test_a_message_goes_through_smtp_with_a_message_id_from_its_key():
    with SmtpSandbox() as box:
        sent = _mailer(box.port).send(
            to="quill@example.org",
            subject="About your application",
            text="Hello quill_ash, it was approved.",
            key="welcome-dm:7:email",
        )
        [got] = box.messages()
    assert got["to"] == ["quill@example.org"] and got["from"] == "wg@example.org"
    assert got["subject"] == "About your application" and "it was approved" in got["text"]
    assert got["message_id"] == sent["message_id"] == SmtpMailer.message_id("welcome-dm:7:email")
    assert "invented-secret" not in repr(_mailer(box.port))


def test_an_unreachable_server_is_retriable():
    with pytest.raises(RetriableError) as caught:
        _mailer(free_port()).send(to="quill@example.org", subject="s", text="t", key="k")
    assert caught.value.platform == "email"


def test_the_inspector_shows_the_mailbox():
    with SmtpSandbox() as box:
        running = Running(urls={}, gateway_url="http://127.0.0.1:1", community=build(), mailbox=box)
        _mailer(box.port).send(
            to="quill@example.org",
            subject="Your application has expired",
            text="Hello quill_ash, it has expired (R-APP-2).",
            key="expired:3:email",
        )
        with TestClient(create_app(running=running, allowed_hosts=["testserver"])) as client:
            page = client.get("/mail")
            home = client.get("/")
    assert page.status_code == 200 and "Your application has expired" in page.text
    assert "To quill@example.org" in page.text and "(R-APP-2)" in page.text
    assert 'href="/mail"' in home.text


def test_up_runs_an_smtp_sandbox_only_when_no_host_is_configured(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("CHARTERFLOW_SMTP_HOST", raising=False)
    settings = Settings(_env_file=None, home=tmp_path)
    spec = sandbox_spec(settings, ["discourse"], gateway_url="http://127.0.0.1:1", prefect_ui="")
    env = sandbox_env(spec)
    assert spec["smtp"]["port"] > 0
    assert env["CHARTERFLOW_SMTP_HOST"] == "127.0.0.1" and env["CHARTERFLOW_SMTP_TLS"] == "none"
    assert env["CHARTERFLOW_SMTP_PORT"] == str(spec["smtp"]["port"])
    monkeypatch.setenv("CHARTERFLOW_SMTP_HOST", "smtp.example.org")
    spec = sandbox_spec(settings, ["discourse"], gateway_url="http://127.0.0.1:1", prefect_ui="")
    assert spec["smtp"] is None and "CHARTERFLOW_SMTP_HOST" not in sandbox_env(spec)
