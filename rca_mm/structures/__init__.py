"""Data structures shared by models and hooks."""
from .oaa_store import OAAEntry, OAAMemory, OAAStore

__all__ = ['OAAEntry', 'OAAMemory', 'OAAStore']
