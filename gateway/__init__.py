"""HeteroFlow gateway: the OpenAI-compatible /v1 proxy. Never imports the bridge."""
