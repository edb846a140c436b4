"""What the bridge knows about inference engines before placement.

The full registry (vendors, compute capability, argument builders) grows here with the
placement work; for creation it is enough to recognise the engine an image carries.
"""

from __future__ import annotations

from bridge.domain.models import Engine

# Checked in order: the more specific names first ("vllm-mtt" before "vllm").
_IMAGE_HINTS: tuple[tuple[str, Engine], ...] = (
    ("mtt", Engine.VLLM_MTT),
    ("musa", Engine.VLLM_MTT),
    ("mindie", Engine.MINDIE),
    ("sglang", Engine.SGLANG),
    ("vllm", Engine.VLLM),
    ("llama.cpp", Engine.LLAMACPP),
    ("llama-cpp", Engine.LLAMACPP),
    ("llamacpp", Engine.LLAMACPP),
    ("transformers", Engine.TRANSFORMERS),
)


def engine_from_image(image: str) -> Engine | None:
    """The engine an image name announces (``vllm/vllm-openai:latest`` -> vllm), if any."""
    repo = image.split("@", 1)[0].lower()
    for hint, engine in _IMAGE_HINTS:
        if hint in repo:
            return engine
    return None
