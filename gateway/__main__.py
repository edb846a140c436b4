"""``python -m gateway``: the standalone gateway with settings from the environment."""

from __future__ import annotations

import sys

from gateway.serve import run_gateway
from gateway.settings import GatewaySettings

if __name__ == "__main__":
    sys.exit(run_gateway(GatewaySettings()))
