"""Hooks: prototype clustering, RSC warm-up, OAA accumulation."""
