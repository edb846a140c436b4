"""``python -m agent_plugin``: the node agent with settings from the environment, until
SIGINT or SIGTERM."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from agent_plugin.logs import configure_logging
from agent_plugin.serve import run_agent
from agent_plugin.settings import AgentSettings


def main() -> int:
    try:
        settings = AgentSettings()
    except ValidationError as exc:
        print(f"heteroflow agent: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    return run_agent(settings)


if __name__ == "__main__":
    sys.exit(main())
