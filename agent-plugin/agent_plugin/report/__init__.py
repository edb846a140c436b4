"""What the agent tells others: heartbeats and task states to the bridge, GPU and engine
facts to Nomad's node metadata."""
