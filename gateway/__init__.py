"""gateway: how platforms reach charterflow (see README.md). ``create_app()`` builds the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(**kwargs: Any) -> FastAPI:  # re-exported lazily: importing gateway stays cheap
    """See :func:`gateway.app.create_app`."""
    # lazy: start-up: importing a gateway module (gateway.body, gateway.settings) loads neither FastAPI nor the app
    from gateway.app import create_app as build

    return build(**kwargs)
