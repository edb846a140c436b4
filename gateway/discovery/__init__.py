"""Where backends come from: Consul health, or the gateway's own checks (embedded default)."""
