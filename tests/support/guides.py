"""What the guides tests share: the seeded channels the guides are published into."""

from __future__ import annotations

# The `world` seed has no Guides category or resources channel: the tests publish into these.
CHANNELS = {"discourse": "General", "discord": "general"}
