"""Request bodies and small helpers shared by the bridge tests."""

from __future__ import annotations

import uuid
from typing import Any


def unique(prefix: str = "svc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def seed_example(name: str | None = None, **over: Any) -> dict[str, Any]:
    """The seed's create-form example: one GPU, port 8000, idle sleep after 30 minutes."""
    body: dict[str, Any] = {
        "name": name or unique("my-qwen-service"),
        "image": "vllm/vllm-openai:latest",
        "model_path": "/models/Qwen2.5-7B-Instruct",
        "gpu_required": 1,
        "ports": "8000",
        "timeout_seconds": 0,
        "idle_timeout_minutes": 30,
        "enable_api": True,
    }
    body.update(over)
    return body


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], dict)
    return err
