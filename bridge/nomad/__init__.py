"""Adapters to Nomad: jobspec rendering, the HTTP client, and reading allocations back."""
