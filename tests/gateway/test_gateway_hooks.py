"""Plugins' gateway routes: the gateway mounts each router factory of the entry-point group
``charterflow.gateway_hooks`` (a throwaway distribution on sys.path here), stores through the
same inbox, and survives a hook that cannot load."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app, gateway_hooks
from gateway.dispatch import StoreOnlyDispatcher
from ledger.db import Ledger
from tests.support.gateway import gateway_settings, inbox_rows

HOOK = """
from fastapi import APIRouter, Request
from connectors.base import InboundEvent


def router(*, accept, settings):
    r = APIRouter(prefix="/hooks/demo")

    @r.post("/event/{n}")
    async def event(n: str, request: Request):
        e = InboundEvent(platform="demo", instance="demo.invalid", dedupe_key=f"demo:demo.invalid:{n}", kind="note")
        route, inbox_id, created = await accept(e, await request.body())
        return {"inbox": inbox_id, "created": created, "limit": settings.max_body_bytes}

    return r
"""


@pytest.fixture
def hook_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "demo_hook.py").write_text(HOOK)
    info = tmp_path / "demo_hook-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-hook\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [charterflow.gateway_hooks]
        demo = demo_hook:router
        broken = demo_hook_missing:router
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("demo_hook", None)


def test_a_plugins_router_is_mounted_and_stores_through_the_inbox(
    hook_dist: Path, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    assert "demo" in dict(gateway_hooks())
    assert "broken" not in dict(gateway_hooks())  # reported, not fatal
    assert "demo_hook_missing" in caplog.text
    app = create_app(settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with TestClient(app) as client:
        first = client.post("/hooks/demo/event/1", content=b"x").json()
        again = client.post("/hooks/demo/event/1", content=b"x").json()
    assert first["created"] is True and again == {**first, "created": False}
    assert [(r.source, r.kind) for r in inbox_rows(ledger) if r.source == "demo"] == [("demo", "note")]


def test_without_hooks_the_gateway_is_unchanged(ledger: Ledger) -> None:
    app = create_app(settings=gateway_settings(), ledger=ledger, dispatcher=StoreOnlyDispatcher())
    with TestClient(app) as client:
        assert client.post("/hooks/demo/event/1", content=b"x").status_code == 404
