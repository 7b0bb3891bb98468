"""The sandbox inspector and the sandboxes process of `charterflow up` (see README.md)."""
