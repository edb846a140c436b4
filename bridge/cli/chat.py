"""``heteroflow chat MODEL "prompt"``: one streamed answer through the gateway, for a terminal
without an SDK.

The gateway takes a service's API key (``sk-...``), not a bridge token: ``-key``, else
HETEROFLOW_API_KEY, else the key ``heteroflow up --demo`` saved for the demo service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from bridge.cli.client import ApiError


def add_chat_command(sub: Any) -> None:
    p = sub.add_parser("chat", help="ask a served model one question through the gateway "
                                    "(streams the answer)")
    p.add_argument("model", help="the model name clients send (the service's model_name)")
    p.add_argument("prompt", help="the user message")
    p.add_argument("-key", "--key", default=None,
                   help="the service's API key (HETEROFLOW_API_KEY, or the demo's saved key)")
    p.add_argument("-max-tokens", "--max-tokens", dest="max_tokens", type=int, default=256)


def resolve_key(given: str | None, home: Path) -> str:
    if given:
        return given
    env = os.environ.get("HETEROFLOW_API_KEY")
    if env:
        return env
    saved = home / "demo-api-key"
    if saved.is_file():
        return saved.read_text().strip()
    raise ApiError(0, {"error": {"code": "no_api_key", "message":
                                 "no API key: pass -key sk-... or set HETEROFLOW_API_KEY (the "
                                 "key is shown once when a service is created)"}})


def run_chat(address: str, args: argparse.Namespace, home: Path) -> None:
    key = resolve_key(args.key, home)
    body = {"model": args.model, "stream": True, "max_tokens": args.max_tokens,
            "messages": [{"role": "user", "content": args.prompt}]}
    url = address.rstrip("/") + "/v1/chat/completions"
    try:
        with httpx.stream("POST", url, json=body, timeout=httpx.Timeout(10, read=300),
                          headers={"Authorization": f"Bearer {key}"}) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise ApiError(resp.status_code, _json_or_empty(resp.text))
            wrote = False
            for line in resp.iter_lines():
                text = _delta(line)
                if text:
                    wrote = True
                    sys.stdout.write(text)
                    sys.stdout.flush()
    except httpx.TransportError as exc:
        raise ApiError(0, {"error": {"code": "unreachable",
                                     "message": f"cannot reach {url}: {exc}"}}) from exc
    if not wrote:
        # A small model may sample its end token first; say so rather than print nothing.
        print("(the model answered with no text; ask again)", file=sys.stderr)
    sys.stdout.write("\n")


def _delta(line: str) -> str:
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return ""
    try:
        choices = json.loads(data).get("choices") or [{}]
    except ValueError:
        return ""
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else ""


def _json_or_empty(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
