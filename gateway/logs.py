"""Structured logs for the gateway process: one JSON object per line (or console text).

Standard-library loggers (ours and Sanic's) go through one formatter; ``extra={...}`` fields
become keys. Secrets are never passed to a logger; as a second guard, values under keys
that name a secret are masked.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from heteroflow_contracts.masking import masked
from heteroflow_contracts.redact import CredentialFilter

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        event.update(masked({key: value for key, value in vars(record).items()
                             if key not in _STANDARD and not key.startswith("_")}))
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(CredentialFilter())  # ?api_key= in a URL, a header echoed in an error
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
