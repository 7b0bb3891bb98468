"""The ledger: charterflow's system of record (see ``ledger/README.md``).

``Ledger(url)`` connects (SQLite file or ``postgresql+psycopg://``); ``ledger.migrate.upgrade``
creates or updates the schema; ``ledger.repo`` holds the functions flows write with, each
recording its audit entry in the same transaction; ``ledger.audit`` verifies and exports the
hash-chained log; ``ledger.roster`` and ``ledger.privacy`` serve the operators' commands.
"""

from __future__ import annotations

from ledger.db import Ledger, redact_url
from ledger.errors import Conflict, LedgerUnavailable, NotFound

__all__ = ["Conflict", "Ledger", "LedgerUnavailable", "NotFound", "redact_url"]
