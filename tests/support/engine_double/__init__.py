"""A real HTTP server that behaves like vLLM's OpenAI server, for gateway tests."""
