"""Bandit policies that pick a server configuration per decision window (see base.py)."""

from servelab.core.bandits.base import BanditPolicy, Context

__all__ = ["BanditPolicy", "Context"]
