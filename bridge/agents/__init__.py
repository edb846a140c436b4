"""Adapter to node agents' HTTP APIs (sleep, wake, start, stop)."""
