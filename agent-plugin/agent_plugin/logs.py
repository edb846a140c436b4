"""The agent process's logs: one JSON object per line (or text with the fields appended),
with every ``extra={...}`` field as a key. No secret is handed to a logger; as a second
guard, fields whose name says secret are masked, by the list all three processes share.
httpx's line per request is kept below INFO: heartbeats and readiness probes would drown
everything else.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from heteroflow_contracts.masking import masked

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_QUIET = ("httpx", "httpcore", "aiohttp.access")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return masked({key: value for key, value in vars(record).items()
                   if key not in _STANDARD and not key.startswith("_")})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "event": record.getMessage(), **_fields(record)}
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                          for k, v in _fields(record).items())
        line = super().format(record)
        return f"{line} {fields}" if fields else line


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
