"""connectors/discord."""
