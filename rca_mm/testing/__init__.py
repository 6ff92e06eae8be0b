"""Helpers that write small data in the real formats, for tests and smoke
runs."""
