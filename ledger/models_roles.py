"""Platform roles tables added by issue 9 (training acknowledgements, drift reports)."""

from __future__ import annotations

from ledger.models import Base  # noqa: F401 - tables here derive from it
