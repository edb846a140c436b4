"""Identifier generators, in exactly the seed's formats (docs/product.md, "Entities").

| entity            | format                          |
|-------------------|---------------------------------|
| TaskGroup         | ``tg-{unix_ns}-{hex4}``         |
| Task              | ``task-{hex8}-r{rank}-{groupid}`` |
| InferenceEndpoint | ``ep-{hex16}``                  |
| ModelRoute        | ``mr-{hex16}``                  |
| gateway API key   | ``sk-{uuid4}``                  |

Users, bearer tokens and key records are ours, not the seed's; they follow the same
``prefix-{hex16}`` habit so every id says what it names.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable

TASK_GROUP_ID = re.compile(r"^tg-[0-9]{19}-[0-9a-f]{4}$")
TASK_ID = re.compile(r"^task-[0-9a-f]{8}-r(0|[1-9][0-9]*)-tg-[0-9]{19}-[0-9a-f]{4}$")
ENDPOINT_ID = re.compile(r"^ep-[0-9a-f]{16}$")
ROUTE_ID = re.compile(r"^mr-[0-9a-f]{16}$")
API_KEY = re.compile(r"^sk-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_task_group_id(clock_ns: Callable[[], int] = time.time_ns) -> str:
    return f"tg-{clock_ns()}-{secrets.token_hex(2)}"


def new_task_id(group_id: str, rank: int) -> str:
    return f"task-{secrets.token_hex(4)}-r{rank}-{group_id}"


def new_endpoint_id() -> str:
    return f"ep-{secrets.token_hex(8)}"


def new_route_id() -> str:
    return f"mr-{secrets.token_hex(8)}"


def new_api_key() -> str:
    """A gateway key, ``sk-{uuid4}``: 122 random bits from the OS CSPRNG."""
    return f"sk-{uuid.uuid4()}"


def new_api_key_id() -> str:
    return f"key-{secrets.token_hex(8)}"


def new_user_id() -> str:
    return f"usr-{secrets.token_hex(8)}"


def new_token_id() -> str:
    return f"tok-{secrets.token_hex(8)}"


def new_user_token() -> str:
    """A REST bearer token; ``hft_`` makes a leaked one easy to grep for."""
    return f"hft_{secrets.token_urlsafe(32)}"
