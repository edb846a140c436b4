"""HuggingFace model folders: ``config.json`` plus weights (``*.safetensors``, else
``pytorch_model*.bin``) plus a tokenizer, the layout ``save_pretrained`` and the Hub write.

The architecture numbers come from config.json, falling back to its ``text_config`` for
multimodal models; the parameter count from the safetensors headers (an 8-byte length and
a JSON table of tensor shapes, read without touching the weights); the quantisation from
``quantization_config`` or the dtype. When a folder has both weight formats, engines load
the safetensors, so only those are counted in its size.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent_plugin.errors import ModelUnreadable
from agent_plugin.models import ModelInfo
from agent_plugin.scanner.base import Claim

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json",
                   "spiece.model", "qwen.tiktoken", "tiktoken.model")
_NOT_WEIGHTS = ("training_args.bin", "optimizer.bin", "scheduler.bin")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_SHORT_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32",
                 "float": "fp32", "float8_e4m3fn": "fp8",
                 # safetensors dtype names, lower-cased
                 "f16": "fp16", "f32": "fp32", "f8_e4m3": "fp8", "f8_e5m2": "fp8"}


class HuggingFaceReader:
    format = "huggingface"

    def claims(self, folder: Path, files: Sequence[str]) -> list[Claim]:
        names = set(files)
        weights = _weights(names)
        tokenizer = [n for n in TOKENIZER_FILES if n in names] + \
            [n for n in names if n.endswith(".tiktoken") and n not in TOKENIZER_FILES]
        if "config.json" not in names or not (weights or tokenizer):
            return []
        other_weights = {n for n in names if _is_weight(n)} - set(weights)
        members = sorted(n for n in names if not n.startswith(".") and n not in other_weights)
        return [Claim(path=folder, files=tuple(folder / n for n in members), whole_folder=True)]

    def inspect(self, claim: Claim) -> ModelInfo:
        names = {f.name for f in claim.files}
        weights = _weights(names)
        if not weights:
            raise ModelUnreadable(f"{claim.path} has config.json but no weights "
                                  "(*.safetensors or pytorch_model*.bin)")
        if not any(n in names for n in TOKENIZER_FILES) and \
                not any(n.endswith(".tiktoken") for n in names):
            raise ModelUnreadable(f"{claim.path} has no tokenizer files "
                                  f"({', '.join(TOKENIZER_FILES[:3])}, ...)")
        config = _read_config(claim.path / "config.json")
        stats = [f.stat() for f in claim.files]
        tensors = [_safetensors_header(claim.path / w) for w in weights
                   if w.endswith(".safetensors")]
        return describe_config(
            config, path=claim.path, size_bytes=sum(s.st_size for s in stats),
            mtime=max(s.st_mtime for s in stats), tensors=tensors,
            weights_bytes=sum((claim.path / w).stat().st_size for w in weights))


def describe_config(config: Mapping[str, Any], *, path: Path, size_bytes: int, mtime: float,
                    tensors: list[dict[str, Any]], weights_bytes: int) -> ModelInfo:
    merged = dict(config)
    text_config = config.get("text_config")
    if isinstance(text_config, dict):
        # a multimodal model's KV cache is the language model's
        merged.update({k: v for k, v in text_config.items() if v is not None})
    heads = _first(merged, "num_attention_heads", "n_head", "num_heads")
    hidden = _first(merged, "hidden_size", "n_embd", "d_model")
    kv_heads = _first(merged, "num_key_value_heads", "num_kv_heads", "n_head_kv",
                      "multi_query_group_num") or (1 if merged.get("multi_query") else heads)
    architectures = config.get("architectures")
    dtype_counts: Counter[str] = Counter()
    parameters = 0
    for table in tensors:
        for name, info in table.items():
            if name != "__metadata__" and isinstance(info, dict):
                parameters += math.prod(info.get("shape") or [1])
                dtype_counts[str(info.get("dtype"))] += 1
    if not tensors:  # .bin only: estimate from the bytes and the declared dtype
        dtype = _short_dtype(config)
        per = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}.get(dtype or "", 0)
        parameters = weights_bytes // per if per else 0
    return ModelInfo(
        name=path.name, format="huggingface", path=str(path), size_bytes=size_bytes,
        mtime=mtime,
        architecture=(architectures[0] if isinstance(architectures, list) and architectures
                      else config.get("model_type")),
        parameter_count=parameters or None,
        quantization=_quantization(config, dtype_counts),
        context_length=_first(merged, "max_position_embeddings", "n_positions",
                              "max_seq_len", "seq_length", "max_sequence_length"),
        num_layers=_first(merged, "num_hidden_layers", "n_layer", "num_layers", "n_layers"),
        hidden_size=hidden, num_kv_heads=kv_heads,
        head_dim=_first(merged, "head_dim") or (hidden // heads if hidden and heads else None),
    )


def _weights(names: set[str]) -> list[str]:
    safetensors = sorted(n for n in names if n.endswith(".safetensors"))
    if safetensors:
        return safetensors
    return sorted(n for n in names if _is_weight(n) and n.endswith(".bin"))


def _is_weight(name: str) -> bool:
    return name.endswith(".safetensors") or (name.endswith(".bin") and name not in _NOT_WEIGHTS)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnreadable(f"{path} cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise ModelUnreadable(f"{path} is not a JSON object")
    return config


def _safetensors_header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > _MAX_SAFETENSORS_HEADER:
                raise ModelUnreadable(f"{path} declares a {length}-byte header")
            header = json.loads(fh.read(length))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnreadable(f"{path} is not a readable safetensors file: {exc}") from None
    if not isinstance(header, dict):
        raise ModelUnreadable(f"{path} has a safetensors header that is not a table")
    return header


def _first(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _short_dtype(config: Mapping[str, Any]) -> str | None:
    dtype = config.get("torch_dtype") or config.get("dtype")
    return _SHORT_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else None


def _quantization(config: Mapping[str, Any], dtypes: Counter[str]) -> str | None:
    quant = config.get("quantization_config")
    if isinstance(quant, dict):
        method = quant.get("quant_method") or quant.get("quant_type")
        bits = quant.get("bits") or quant.get("w_bit")
        if isinstance(method, str):
            return f"{method}-{bits}bit" if isinstance(bits, int) else method
    declared = _short_dtype(config)
    if declared:
        return declared
    if dtypes:
        top = dtypes.most_common(1)[0][0]
        return _SHORT_DTYPES.get(top.lower(), top.lower())
    return None
