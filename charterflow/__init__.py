"""charterflow."""
