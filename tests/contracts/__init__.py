"""Contract tests: the JSON the agent sends and the bridge takes, checked on both sides."""
