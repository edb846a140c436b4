"""Usage for streams whose engine sends none (llama-cpp-python ignores
``stream_options.include_usage``): the gateway counts what it relayed.

The rule: one completion token per relayed event that carries text (a non-empty
``delta.content`` for chat, ``text`` for completions). llama.cpp's server, like vLLM's and
OpenAI's, streams one token per event, so the count is exact for them; an engine that
batches several tokens into one event is under-counted, and one that sends its own usage
is never counted this way. Prompt tokens never pass through a stream, so they are 0 here.

When the client asked for usage and none came, the gateway sends OpenAI's usage chunk
(``choices: []``, ``usage: {...}``) just before ``data: [DONE]``, and records the count.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

# A text field whose value does not start with the closing quote: a token was relayed.
_TEXT = re.compile(rb'"(?:content|text)"\s*:\s*"(?!")')
_ID = re.compile(rb'"id"\s*:\s*"([^"\\]{1,200})"')
DONE = b"data: [DONE]"


def count_tokens(chunk: bytes) -> int:
    return len(_TEXT.findall(chunk))


def stream_id(data: bytes) -> str | None:
    found = _ID.search(data)
    return found.group(1).decode("ascii", "replace") if found else None


def usage_event(ident: str, model: str, completion: int, *, chat: bool) -> bytes:
    event: dict[str, Any] = {
        "id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()), "model": model, "choices": [],
        "usage": {"prompt_tokens": 0, "completion_tokens": completion,
                  "total_tokens": completion}}
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
