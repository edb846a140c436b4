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


def heartbeat(node_id: str, **over: Any) -> dict[str, Any]:
    """An agent's heartbeat body: one NVIDIA GPU, one scanned model."""
    body: dict[str, Any] = {
        "node_id": node_id, "name": f"{node_id}.lan", "agent_url": "http://127.0.0.1:3334",
        "agent_secret": "s3cret-s3cret-s3cret-0001", "nomad_node_id": None,
        "facts": {"hostname": node_id, "cpu_count": 2, "memory_mb": 24000},
        "gpus": [{"vendor": "nvidia", "index": 0, "uuid": "GPU-1", "name": "NVIDIA A100",
                  "memory_total_mb": 81920, "memory_used_mb": 0, "memory_free_mb": 81920,
                  "utilization_percent": 0.0, "temperature_c": 30.0, "power_w": 60.5,
                  "driver_version": "550.54", "pci_bus_id": "00000000:1B:00.0",
                  "healthy": True, "health_reason": "", "compute_capability": "8.0"}],
        "skipped": {"amd": "amd-smi not found"},
        "engines": ["vllm", "llamacpp"],
        "models": [{"name": "SmolLM2-135M-Instruct.Q4_1", "format": "gguf",
                    "path": "/models/smollm2.gguf", "size_bytes": 92_000_000,
                    "architecture": "llama", "parameter_count": 134_515_008,
                    "quantization": "Q4_1", "context_length": 8192, "num_layers": 30,
                    "hidden_size": 576, "num_kv_heads": 3, "head_dim": 64,
                    "estimated_vram_mb": 512, "vram_explanation": "weights 88 MiB ...",
                    "mtime": 1.0}],
    }
    body.update(over)
    return body
