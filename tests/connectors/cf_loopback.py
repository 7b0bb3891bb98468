"""Moved to ``tests.support.net``; this name stays until branches written before the move are merged."""

from tests.support.net import LoopbackServer  # noqa: F401 - re-exported
