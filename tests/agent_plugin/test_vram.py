"""The VRAM estimate: weights + fp16 KV cache + engine overhead, split by tensor
parallelism, with an explanation that states each part in numbers."""

from __future__ import annotations

import dataclasses

from agent_plugin.models import ModelInfo
from agent_plugin.vram import ENGINE_OVERHEAD, estimate_vram, with_estimate

GIB = 1024**3

LLAMA3_8B = ModelInfo(
    name="Meta-Llama-3-8B-Instruct", format="huggingface", path="/models/llama3",
    size_bytes=16_060_522_496, mtime=0.0, architecture="LlamaForCausalLM",
    parameter_count=8_030_261_248, quantization="bf16", context_length=8192, num_layers=32,
    hidden_size=4096, num_kv_heads=8, head_dim=128)


class TestEstimate:
    def test_llama3_8b_on_vllm(self) -> None:
        estimate = estimate_vram(LLAMA3_8B, context_length=8192, engine="vllm")
        # 15317 MiB weights + 1024 MiB KV (2*32*8*128*8192*2 B = 1 GiB) + 1536 MiB
        assert estimate.mb == 15317 + 1024 + 1536
        text = estimate.explanation
        assert "weights 15317 MiB" in text and "KV cache 1024 MiB" in text
        assert "2 x 32 layers x 8 KV heads x 128 dims x 8192 tokens x 2 bytes" in text
        assert "vllm overhead 1536 MiB" in text and f"= {estimate.mb} MiB" in text
        assert "gpu-memory-utilization" in text

    def test_context_defaults_to_the_models_own(self) -> None:
        assert estimate_vram(LLAMA3_8B, context_length=None, engine="vllm").mb == \
            estimate_vram(LLAMA3_8B, context_length=8192, engine="vllm").mb

    def test_tensor_parallel_splits_weights_and_kv_not_overhead(self) -> None:
        estimate = estimate_vram(LLAMA3_8B, context_length=8192, engine="vllm",
                                 tensor_parallel=2)
        assert estimate.mb == 8171 + 1536  # ceil((15317 + 1024) / 2) + overhead
        assert "/ 2 GPUs" in estimate.explanation and "per GPU" in estimate.explanation

    def test_llamacpp_overhead_is_smaller(self) -> None:
        vllm = estimate_vram(LLAMA3_8B, context_length=4096, engine="vllm")
        llamacpp = estimate_vram(LLAMA3_8B, context_length=4096, engine="llamacpp")
        assert vllm.mb - llamacpp.mb == ENGINE_OVERHEAD["vllm"].mb - ENGINE_OVERHEAD[
            "llamacpp"].mb
        assert "gpu-memory-utilization" not in llamacpp.explanation

    def test_unknown_numbers_are_said_not_guessed(self) -> None:
        no_layers = dataclasses.replace(LLAMA3_8B, num_layers=None)
        text = estimate_vram(no_layers, context_length=4096, engine="vllm").explanation
        assert "KV cache not counted" in text
        no_context = dataclasses.replace(LLAMA3_8B, context_length=None)
        assert "no context length" in estimate_vram(no_context, context_length=None,
                                                    engine="vllm").explanation
        odd = estimate_vram(LLAMA3_8B, context_length=1024, engine="tgi")
        assert "no figure" in odd.explanation

    def test_scan_estimate_caps_the_context(self) -> None:
        capped = with_estimate(LLAMA3_8B, context_cap=4096)
        assert capped.estimated_vram_mb == 15317 + 512 + 1536
        assert "4096 tokens" in capped.vram_explanation
