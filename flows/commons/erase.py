"""Erasure in the common room (R-PRIVACY-2, R-COMMS): the bridged copies of a person's messages
are deleted on every platform where the bridge posted them, and the ledger forgets who wrote
the sources. The person's own messages stay where they wrote them (theirs to delete there); a
platform that refuses a deletion for good is recorded and reported, the others go on."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from prefect import flow
from sqlalchemy import select

from flows.commons.relay import ACTOR, delete_copies, row_of
from flows.kit import Ctx, context
from ledger import audit
from ledger import commons as store
from ledger.models import Identity
from ledger.repo import get_person

__all__ = ["commons_erase", "erase_bridged", "has_bridged"]

log = logging.getLogger("charterflow.commons")


def _accounts(session: Any, person_id: int) -> list[tuple[str, str]]:
    return [
        (str(i.platform), str(i.external_id))
        for i in session.scalars(select(Identity).where(Identity.person_id == person_id))
        if i.external_id
    ]


def has_bridged(session: Any, person_id: int) -> bool:
    """Whether the bridge holds any source written by the person (then erasure has platforms to
    reach)."""
    return bool(store.sources_by_authors(session, _accounts(session, person_id)))


def erase_bridged(ctx: Ctx, person_id: int) -> dict[str, Any]:
    """Delete the live copies of the person's bridged messages; forget the sources' authors."""
    with ctx.ledger.read() as session:
        sources = [
            (
                s.id,
                [
                    (c.id, c.platform, c.room, c.thread_id, c.message_id)
                    for c in store.copies_of(session, s.id)
                    if c.state == "live"
                ],
            )
            for s in store.sources_by_authors(session, _accounts(session, person_id))
        ]
    deleted, refused = 0, []
    for source_id, copies in sources:
        not_deleted = delete_copies(ctx, source_id, copies, state="erased")  # refusals audited, the rest go on
        deleted += len(copies) - len(not_deleted)
        refused += not_deleted
    with ctx.ledger.transaction() as session:
        for source_id, _ in sources:
            row = row_of(session, source_id)
            row.author_username = None
            row.author_platform_id = None
            store.set_state(row, state="erased", at=ctx.now)
        audit.append(
            session,
            actor=ACTOR,
            action="commons.erased",
            subject=f"person:{person_id}",
            payload={"ruling": "R-COMMS", "sources": len(sources), "copies_deleted": deleted, "refused": refused},
            at=ctx.now,
        )
    log.info("commons: person:%s erased: %s source(s), %s copies deleted", person_id, len(sources), deleted)
    return {"sources": len(sources), "copies_deleted": deleted, "refused": refused}


@flow(name="commons-erase", flow_run_name="commons-erase")
def commons_erase(person_id: int, now: datetime | None = None) -> dict[str, Any]:
    """``erase_bridged`` as a flow run (``charterflow person erase`` runs it first)."""
    return erase_bridged(context(now), person_id)


def erase_before_ledger(ledger: Any, person: str) -> dict[str, Any] | None:
    """For ``charterflow person erase``: the bridged copies first (they are found through the
    person's accounts, which the ledger's erasure removes); ``None`` when the bridge holds none."""
    with ledger.read() as session:
        person_id = get_person(session, person).id
        if not has_bridged(session, person_id):
            return None
    return erase_bridged(context(None, ledger=ledger), person_id)
