"""Credentials out of every log line: URLs' query secrets and user info, Authorization-like
headers, bearer tokens and ``sk-`` keys, in any string a log record carries.

A logging filter, installed on the process's log handler by both entry points (the
gateway's ``configure_logging`` and the bridge's, which ``heteroflow up`` uses), so access
logs (``?api_key=...`` in the URL), framework errors and our own records are all covered.
Secrets are never handed to a logger on purpose; this catches what a client puts where it
should not. Both use it, so it lives here: the bridge may not import the gateway.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_QUERY = re.compile(r"([?&;](?:api[_-]?key|key|token|access[_-]?token|auth|authorization|"
                    r"password|passwd|secret|client[_-]?secret|sig|signature|code)=)"
                    r"[^&;#\s\"']*", re.I)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@\"']+@", re.I)
_HEADER = re.compile(r"((?:proxy-)?authorization|x-api-key|api-key|cookie|x-consul-token|"
                     r"x-nomad-token)([\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic)\s+)?"
                     r"[^\s\"',;]+", re.I)
_BEARER = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}", re.I)
_SK = re.compile(r"\bsk-[A-Za-z0-9_-]{6,}")
_HINTS = ("=", "@", "earer", "asic", "sk-", "uthorization", "ookie", "oken", "pi-key")


def redact(text: str) -> str:
    if not any(h in text for h in _HINTS):
        return text  # the usual line: nothing that could hold a credential
    text = _QUERY.sub(r"\1" + MASK, text)
    text = _USERINFO.sub(r"\1" + MASK + "@", text)
    text = _HEADER.sub(r"\1\2" + MASK, text)
    text = _BEARER.sub(r"\1 " + MASK, text)
    return _SK.sub("sk-" + MASK, text)


class CredentialFilter(logging.Filter):
    """Rewrites a record's message, arguments and string extras in place; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):
                return True  # a broken format string: the formatter reports it
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        for key, value in vars(record).items():
            if isinstance(value, str) and key not in ("msg", "name", "levelname", "pathname",
                                                       "filename", "module", "funcName"):
                setattr(record, key, redact(value))
        return True
