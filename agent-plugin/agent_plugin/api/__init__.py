"""The agent's own HTTP API: the bridge starts, stops, sleeps and wakes engines here."""
