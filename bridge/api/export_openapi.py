"""``python -m bridge.api.export_openapi FILE``: write the OpenAPI document without a server.

The web UI's component tests validate against the document the server would publish, so
they are generated from it before each run instead of from a copy that could drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bridge.app  # noqa: F401  (imports every API module, which registers its operations)
from bridge.api.openapi import build_document


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bridge.api.export_openapi FILE", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(json.dumps(build_document(version="test"), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
