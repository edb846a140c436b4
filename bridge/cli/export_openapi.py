"""``python -m bridge.cli.export_openapi FILE``: write the OpenAPI document without a server.

The web UI's component tests validate against the document the server would publish, so
they are generated from it before each run instead of from a copy that could drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bridge.app import api_document


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bridge.cli.export_openapi FILE", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(json.dumps(api_document(), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
