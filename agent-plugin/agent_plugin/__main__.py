"""``python -m agent_plugin``: the node agent with settings from the environment, until
SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import sys

from agent_plugin.serve import run_agent
from agent_plugin.settings import AgentSettings


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_agent(AgentSettings())


if __name__ == "__main__":
    sys.exit(main())
