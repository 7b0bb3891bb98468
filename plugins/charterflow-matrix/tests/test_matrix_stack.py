"""The homeserver ``charterflow up`` starts (``charterflow_matrix.stack.up_service``): settings for
the stack's processes, a community seeded once, the same bot and rooms after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from charterflow_matrix.connector import MatrixConnector
from charterflow_matrix.settings import MatrixSettings
from charterflow_matrix.stack import up_service


def test_up_starts_synapse_seeds_once_and_restarts_with_the_same_bot(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARTERFLOW_MATRIX_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("CHARTERFLOW_MATRIX_UP", raising=False)
    service = up_service(home=tmp_path, gateway_url="http://127.0.0.1:9")
    assert service is not None
    try:
        env = service.env
        settings = MatrixSettings(_env_file=None, homeserver_url=env["CHARTERFLOW_MATRIX_HOMESERVER_URL"],
                                  server_name=env["CHARTERFLOW_MATRIX_SERVER_NAME"],
                                  access_token=SecretStr(env["CHARTERFLOW_MATRIX_ACCESS_TOKEN"]))
        with MatrixConnector(settings=settings) as matrix:
            assert len(matrix.community_rooms()) == 4
            assert matrix.find_user("wren_halloway").username == "wren_halloway"
        assert "matrix.to" in service.links["Matrix"] and env["CHARTERFLOW_MATRIX_ACCESS_TOKEN"] not in service.links["Matrix"]
    finally:
        service.stop()
    again = up_service(home=tmp_path, gateway_url="http://127.0.0.1:9")
    try:
        assert again.env == env  # same port, same bot token
        with MatrixConnector(settings=settings) as matrix:
            assert len(matrix.community_rooms()) == 4  # not seeded twice
    finally:
        again.stop()
    assert not again.homeserver.alive()


def test_up_leaves_a_configured_homeserver_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTERFLOW_MATRIX_ACCESS_TOKEN", "a-real-token-from-settings")
    assert up_service(home=tmp_path, gateway_url="http://127.0.0.1:9") is None
