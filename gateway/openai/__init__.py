"""The OpenAI-compatible HTTP surface: request parsing and the /v1 handlers."""
