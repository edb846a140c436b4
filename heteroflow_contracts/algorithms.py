"""Load-balancing algorithm names: the bridge stores one per route and endpoint, the gateway
picks backends by it."""

from __future__ import annotations

from typing import Final

ROUND_ROBIN: Final = "round_robin"
RANDOM: Final = "random"
LEAST_CONNECTIONS: Final = "least_connections"
ALGORITHMS: Final = (ROUND_ROBIN, RANDOM, LEAST_CONNECTIONS)
DEFAULT_ALGORITHM: Final = ROUND_ROBIN
