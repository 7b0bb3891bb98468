"""Fixtures of the roles tests: the membership tests' seeded world (both sandboxes on 127.0.0.1,
a migrated SQLite ledger, the session's Prefect server), with the seeded admins in the ledger.

Seeded admins: Forum ``avery_quill``, ``bram_tolliver`` (and the unmanaged ``system``),
Discord ``cleo_marsh``, ``dario_fenwick``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from ledger import repo
from tests.flows.membership.conftest import NOW, World, world  # noqa: F401 - fixture re-export

SEEDED_ADMINS = {"discourse": ["avery_quill", "bram_tolliver"],
                 "discord": ["cleo_marsh", "dario_fenwick"]}


def want(w: World, handle: str, platform: str, role: str, desired: bool = True) -> None:
    """Record in the ledger that ``handle`` should (not) hold ``role`` on ``platform``."""
    with w.ledger.transaction() as session:
        person = repo.get_person(session, handle)
        repo.set_desired_platform_role(session, person, platform=platform, role=role,
                                       desired=desired, actor="operator", decision_ref="test",
                                       at=NOW)


@pytest.fixture
def roles_world(world: World) -> Iterator[World]:  # noqa: F811 - the imported fixture
    """The world with the seeded admins recorded as wanted in the ledger."""
    for platform, handles in SEEDED_ADMINS.items():
        for handle in handles:
            want(world, handle, platform, "admin")
    yield world


@pytest.fixture
def cli() -> typer.Typer:
    """A Typer app with only the ``roles`` group (what ``charterflow`` registers)."""
    from charterflow.roles_cli import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """charterflow (test)."""

    register(app)
    return app
