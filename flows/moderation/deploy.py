"""This package's Prefect deployments, with their schedules (served by ``flows.serve``)."""

from __future__ import annotations


def deployments() -> list:
    """The deployments of this package."""
    return []
