"""A throwaway connector for an invented platform, Parlor (tests only)."""
