"""Go wire conventions Nomad uses: durations, timestamps, identifiers.

Job JSON carries durations as integer nanoseconds; query strings (`wait=5s`) and HCL carry Go
duration strings. Times are Unix nanoseconds except Go `time.Time` fields, which are RFC 3339.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]

ZERO_TIME = "0001-01-01T00:00:00Z"

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string Go's time.ParseDuration would reject; the text mirrors Go's message."""


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration: "1h30m", "300ms", "-5s", "0" -> nanoseconds."""
    original = text
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise DurationError(f'time: invalid duration "{original}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", text[pos:]):
                raise DurationError(f'time: missing unit in duration "{original}"')
            raise DurationError(f'time: invalid duration "{original}"')
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    return sign * round(total)


def format_duration(ns: int) -> str:
    """Go's Duration.String() for whole-unit values, enough for messages ("30s", "1h0m0s")."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                value = ns / size
                text = f"{value:.9f}".rstrip("0").rstrip(".")
                return f"{sign}{text}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = rest / 1_000_000_000
    sec_text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{sign}{hours}h{minutes}m{sec_text}s"
    if minutes:
        return f"{sign}{minutes}m{sec_text}s"
    return f"{sign}{sec_text}s"


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int | None = None) -> str:
    """A Go time.Time as the JSON encoder writes it (UTC, nanosecond precision trimmed)."""
    if ns is None:
        ns = now_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def new_id() -> str:
    return str(uuid.uuid4())
