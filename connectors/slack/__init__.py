"""connectors/slack."""
