"""REST client commands, in the habits of the ``nomad`` CLI.

``-address`` / HETEROFLOW_ADDR, ``-token`` / HETEROFLOW_TOKEN, ``-json`` for machine output;
human tables otherwise. Errors print the server's message and exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = err.get("code", "error")
        self.message = err.get("message", str(body))
        self.details = err.get("details", {})
        super().__init__(f"{status} {self.code}: {self.message}")


class ApiClient:
    def __init__(self, address: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=address.rstrip("/") + "/api/v1", headers=headers,
                                  timeout=timeout)

    def text(self, method: str, path: str) -> str:
        return str(self.call(method, path))

    def call(self, method: str, path: str, *, body: Any = None,
             params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self._http.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:
            raise ApiError(0, {"error": {"code": "unreachable", "message":
                                         f"cannot reach {self._http.base_url}: {exc}"}}) from exc
        if resp.status_code == 204:
            return None
        if not resp.headers.get("content-type", "").startswith("application/json"):
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, {})
            return resp.text
        data = resp.json() if resp.content else None
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, data or {})
        return data


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def print_kv(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)} = {'' if value is None else value}")
