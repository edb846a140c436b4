"""Choosing where a request goes: route tiers, weights, and per-route balancing."""
