"""Data structures shared by models and hooks."""
from .oaa_store import OAAEntry, OAAStore

__all__ = ['OAAEntry', 'OAAStore']
