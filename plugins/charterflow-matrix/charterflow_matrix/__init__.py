"""charterflow's Matrix connector, a plugin the core never imports (see README.md)."""
