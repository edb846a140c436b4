"""How much GPU memory a model needs to serve, and why: the estimate the bridge places by.

    per GPU = (weights + KV cache) / tensor_parallel + engine overhead

* weights: the model's file bytes (quantised files are already their loaded size);
* KV cache: 2 (K and V) x layers x KV heads x head size x context tokens x 2 bytes (fp16);
* overhead: what the engine holds besides, per GPU (CUDA context, graphs, activations).

It is a floor, not a reservation: vLLM and SGLang pre-allocate a share of the GPU
(``--gpu-memory-utilization``, 0.9 by default) for their KV cache whatever the model, so
co-scheduling with them needs that share lowered. The explanation says all of this in
numbers, so "why does this not fit?" has an answer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from agent_plugin.models import ModelInfo
from agent_plugin.scanner.formats import claim_path

MIB = 1024 * 1024
KV_BYTES_PER_ELEMENT = 2  # fp16/bf16 KV cache, the engines' default
DEFAULT_CONTEXT_CAP = 4096  # the seed's llama.cpp --ctx-size; what a scan assumes at most


@dataclass(frozen=True, slots=True)
class Overhead:
    mb: int
    what: str


# Measured orders of magnitude, per GPU; vLLM's CUDA graphs alone take 0.5-1 GiB.
ENGINE_OVERHEAD: dict[str, Overhead] = {
    "vllm": Overhead(1536, "CUDA context, CUDA graphs and activation buffers"),
    "sglang": Overhead(1536, "CUDA context, CUDA graphs and activation buffers"),
    "vllm-mtt": Overhead(1536, "MUSA context, graphs and activation buffers"),
    "mindie": Overhead(2048, "CANN context, graph workspace and activations"),
    "transformers": Overhead(1024, "CUDA context and eager PyTorch activations"),
    "llamacpp": Overhead(256, "CUDA context and llama.cpp compute buffers"),
}
UNKNOWN_ENGINE = Overhead(1024, "the runtime of an engine we have no figure for")
PREALLOCATING = frozenset({"vllm", "sglang", "vllm-mtt"})
DEFAULT_ENGINE_FOR_FORMAT = {"gguf": "llamacpp", "huggingface": "vllm"}


@dataclass(frozen=True, slots=True)
class VramEstimate:
    mb: int
    explanation: str


def estimate_vram(model: ModelInfo, *, context_length: int | None, engine: str,
                  tensor_parallel: int = 1) -> VramEstimate:
    """Memory per GPU to serve ``model`` with ``engine`` at ``context_length`` tokens (the
    model's own maximum when None) split over ``tensor_parallel`` GPUs."""
    tp = max(1, tensor_parallel)
    overhead = ENGINE_OVERHEAD.get(engine, UNKNOWN_ENGINE)
    weights_mb = math.ceil(model.size_bytes / MIB)
    context = context_length or model.context_length
    parts = [f"weights {weights_mb} MiB (file size)"]
    kv_mb = 0
    if context is None:
        parts.append("KV cache not counted (no context length is known)")
    elif None in (model.num_layers, model.num_kv_heads, model.head_dim):
        parts.append("KV cache not counted (the model does not state its layer and "
                     "KV-head counts)")
    else:
        layers, heads, dim = model.num_layers or 0, model.num_kv_heads or 0, model.head_dim or 0
        kv_mb = math.ceil(2 * layers * heads * dim * context * KV_BYTES_PER_ELEMENT / MIB)
        parts.append(f"KV cache {kv_mb} MiB (2 x {layers} layers x {heads} KV heads x {dim} "
                     f"dims x {context} tokens x {KV_BYTES_PER_ELEMENT} bytes, fp16)")
    shared = weights_mb + kv_mb
    per_gpu_shared = math.ceil(shared / tp)
    total = per_gpu_shared + overhead.mb
    engine_part = f"{engine} overhead {overhead.mb} MiB ({overhead.what})"
    if tp > 1:
        text = (f"({' + '.join(parts)}) / {tp} GPUs = {per_gpu_shared} MiB, + {engine_part} "
                f"= {total} MiB per GPU")
    else:
        text = f"{' + '.join(parts)} + {engine_part} = {total} MiB"
    if engine in PREALLOCATING:
        text += (f"; {engine} pre-allocates --gpu-memory-utilization of the GPU (0.9 by "
                 "default) whatever the model, so this is the least it needs")
    return VramEstimate(mb=total, explanation=text)


def with_estimate(model: ModelInfo, *, context_cap: int = DEFAULT_CONTEXT_CAP,
                  engine: str | None = None) -> ModelInfo:
    """The model with the scanner's own estimate filled in: its format's usual engine, and
    its context length capped at ``context_cap`` (a 128k-token KV cache is rarely wanted)."""
    context = min(model.context_length or context_cap, context_cap)
    estimate = estimate_vram(model, context_length=context,
                             engine=engine or DEFAULT_ENGINE_FOR_FORMAT[model.format])
    return dataclasses.replace(model, estimated_vram_mb=estimate.mb,
                               vram_explanation=estimate.explanation)


def inspect_model(path: str | Path, *, context_cap: int = DEFAULT_CONTEXT_CAP) -> ModelInfo:
    """Describe one GGUF file or HuggingFace folder, with a VRAM estimate. Reads files:
    from async code call it through ``asyncio.to_thread``. Raises ``ModelUnreadable`` with
    the reason when the path is not a model."""
    reader, claim = claim_path(Path(path).absolute())  # not resolved: keep the caller's name
    return with_estimate(reader.inspect(claim), context_cap=context_cap)
