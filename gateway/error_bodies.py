"""An upstream's error answer, made safe to relay: OpenAI's shape, no stack, no file paths.

Engines answer errors in their own ways (llama-cpp-python's server puts a Python traceback,
with the engine's file paths, in ``message``; FastAPI says ``detail``; some send text). The
client gets ``{"error": {"message", "type", "param", "code"}}`` with the engine's message
minus tracebacks and paths, so that nothing about the machine behind leaks. Only error
answers pass here, never the hot path of a success.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_MESSAGE = 500
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):.*?(?=\n\S|\Z)", re.S)
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+.*$', re.M)
# An absolute path of two parts or more (POSIX or Windows), or a home-relative one.
_PATH = re.compile(r"(?:(?<![\w:/])~?/(?:[\w.@+-]+/)+[\w.@+-]*|[A-Za-z]:\\(?:[^\\\s\"']+\\)+"
                   r"[^\\\s\"']*)")


def safe_error_body(body: bytes, status: int) -> bytes:
    message, kind, param, code = _read(body)
    if kind is None:
        kind = "invalid_request_error" if status < 500 else "server_error"
    error = {"message": scrub(message) or f"the backend answered {status}", "type": kind,
             "param": param, "code": code}
    return json.dumps({"error": error}, separators=(",", ":")).encode()


def scrub(text: str) -> str:
    text = _TRACEBACK.sub("", text)
    text = _FRAME.sub("", text)
    text = _PATH.sub("<path>", text)
    text = " ".join(text.split())
    return text[:MAX_MESSAGE]


def _read(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace"), None, None, None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            return (_text(error.get("message", "")), _str(error.get("type")),
                    _str(error.get("param")), _str(error.get("code")))
        if error is not None:
            return _text(error), None, None, None
    return _text(data), None, None, None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)[:MAX_MESSAGE * 2]


def _str(value: Any) -> str | None:
    return str(value)[:100] if isinstance(value, str | int) and value != "" else None
