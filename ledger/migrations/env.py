"""Alembic environment of the ledger: always driven from ``ledger.migrate`` with a connection."""

from __future__ import annotations

from alembic import context

from ledger.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: later migrations use batch mode there.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
# ledger.migrate opened the transaction (and took the migration lock) already.
context.run_migrations()
