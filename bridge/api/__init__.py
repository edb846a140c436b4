"""HTTP layer of the bridge: thin handlers that parse, authorize, call one service, serialize."""
