"""HeteroFlow node agent: GPU detection, model scanning, sleep/wake. Never imports the bridge."""
