"""Quarterly report and meeting tables added by issue 10."""

from __future__ import annotations

from ledger.models import Base  # noqa: F401 - tables here derive from it
