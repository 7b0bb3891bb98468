"""connectors/discourse."""
