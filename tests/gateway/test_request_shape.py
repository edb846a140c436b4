"""A client's malformed request is the client's 400, checked at the gateway: the engine never
sees it and no backend pays for it. An engine's own error reaches the client without its
traceback or file paths."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway_harness import Stack

BAD_CHATS: list[tuple[dict[str, Any], str, str]] = [
    ({"messages": "not a list"}, "messages", "invalid_type"),
    ({}, "messages", "missing_required_parameter"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "invalid_value"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
    ({"messages": [], "temperature": "hot"}, "temperature", "invalid_type"),
    ({"messages": [], "max_tokens": -1}, "max_tokens", "invalid_value"),
    ({"messages": [], "stream_options": {"include_usage": "yes"}},
     "stream_options.include_usage", "invalid_type"),
]


def test_bad_shapes_are_400s_that_never_reach_the_engine(stack: Stack) -> None:
    double = stack.double("shape", "shape")
    group = stack.world.add_group("shape")
    group.add_task(double)
    stack.gateway.wait_usable(group.id, 1)
    stack.gateway.wait_serving(group.key, "shape")
    double.reset()
    headers = {"Authorization": f"Bearer {group.key}"}
    for _ in range(3):  # more than failures_before_cooldown, had they counted
        for fields, param, code in BAD_CHATS:
            r = httpx.post(stack.gateway.url + "/v1/chat/completions", headers=headers,
                           json={"model": "shape", **fields}, timeout=30)
            assert r.status_code == 400, (fields, r.text)
            error = r.json()["error"]
            assert (error["type"], error["param"], error["code"]) == (
                "invalid_request_error", param, code), (fields, error)
    for path, body in (("/v1/completions", {"model": "shape", "prompt": {"a": 1}}),
                       ("/v1/embeddings", {"model": "shape"})):
        r = httpx.post(stack.gateway.url + path, headers=headers, json=body, timeout=30)
        assert r.status_code == 400, r.text
    assert double.stats()["requests"] == 0
    assert stack.gateway.usable(group.id) == 1
    assert stack.gateway.chat(group.key, "shape").status_code == 200  # nobody cooled down

    sdk = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=group.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="shape", messages="not a list")  # type: ignore[arg-type]
    assert caught.value.code == "invalid_type"
    assert caught.value.param == "messages"
    # Extensions the gateway does not know pass through untouched.
    r = stack.gateway.chat(group.key, "shape", top_k=5, repetition_penalty=1.1)
    assert r.status_code == 200
    assert double.stats()["last_body"]["top_k"] == 5


def test_engine_errors_lose_their_traceback_and_paths(stack: Stack) -> None:
    double = stack.double("trace", "trace")
    group = stack.world.add_group("trace")
    group.add_task(double)
    stack.gateway.wait_usable(group.id, 1)
    stack.gateway.wait_serving(group.key, "trace")
    double.control(mode="error500", error_text=(
        'Traceback (most recent call last):\n  File "/usr/lib/python3/dist-packages/'
        'llama_cpp/server/app.py", line 412, in create_chat_completion\n    raise '
        "ValueError(x)\nValueError: cannot read /srv/models/secret/model.gguf"))
    r = stack.gateway.chat(group.key, "trace")
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "server_error"
    assert "ValueError: cannot read <path>" in error["message"]
    for leak in ("Traceback", "/usr/lib", "app.py", "/srv/models"):
        assert leak not in r.text
