"""GGUF model files (llama.cpp's format): one ``.gguf`` file, or a split model named
``NAME-00001-of-00003.gguf`` whose first shard carries the metadata and whose shards
together are the model.

Metadata keys read (``ARCH`` = ``general.architecture``): ``ARCH.context_length``,
``ARCH.block_count``, ``ARCH.embedding_length``, ``ARCH.attention.head_count``,
``ARCH.attention.head_count_kv`` (a number, or one per layer), ``ARCH.attention.key_length``
(the head size, else embedding / heads), ``general.file_type`` (the quantisation). The
parameter count is the sum of the tensors' element counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, LlamaFileType

from agent_plugin.errors import ModelUnreadable
from agent_plugin.models import ModelInfo
from agent_plugin.scanner.base import Claim
from agent_plugin.scanner.gguf_meta import GgufHeader, read_gguf_header

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")


class GgufReader:
    format = "gguf"

    def claims(self, folder: Path, files: Sequence[str]) -> list[Claim]:
        names = set(files)
        found = []
        for name in sorted(names):
            if not name.endswith(".gguf"):
                continue
            split = _SPLIT.match(name)
            if split is None:
                found.append(Claim(path=folder / name, files=(folder / name,)))
            elif split["part"] == "00001":
                total = int(split["total"])
                shards = [f"{split['stem']}-{i:05d}-of-{total:05d}.gguf"
                          for i in range(1, total + 1)]
                found.append(Claim(path=folder / name,
                                   files=tuple(folder / s for s in shards if s in names)))
        return found

    def inspect(self, claim: Claim) -> ModelInfo:
        split = _SPLIT.match(claim.path.name)
        if split is not None and len(claim.files) != int(split["total"]):
            raise ModelUnreadable(f"{claim.path} is split into {int(split['total'])} files "
                                  f"but only {len(claim.files)} are present")
        header = read_gguf_header(claim.path)
        stats = [f.stat() for f in claim.files]
        return describe_gguf(header, path=claim.path,
                             size_bytes=sum(s.st_size for s in stats),
                             mtime=max(s.st_mtime for s in stats),
                             name=split["stem"] if split else claim.path.stem)


def describe_gguf(header: GgufHeader, *, path: Path, size_bytes: int, mtime: float,
                  name: str) -> ModelInfo:
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelUnreadable(f"{path} has no general.architecture; it is not a model file")

    def key(suffix: str) -> int | None:
        return _count(meta.get(f"{arch}.{suffix}"))

    heads = key("attention.head_count")
    hidden = key("embedding_length")
    head_dim = key("attention.key_length") or (hidden // heads if hidden and heads else None)
    parameters = sum(t.elements for t in header.tensors) if header.tensors else None
    return ModelInfo(
        name=name, format="gguf", path=str(path), size_bytes=size_bytes, mtime=mtime,
        architecture=arch, parameter_count=parameters or None,
        quantization=_quantization(header), context_length=key("context_length"),
        num_layers=key("block_count"), hidden_size=hidden,
        num_kv_heads=key("attention.head_count_kv") or heads, head_dim=head_dim,
    )


def _count(value: Any) -> int | None:
    """A count, or the largest of a per-layer list (the KV cache is sized by the widest)."""
    if isinstance(value, list):
        value = max((v for v in value if isinstance(v, int)), default=None)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _quantization(header: GgufHeader) -> str | None:
    file_type = header.metadata.get("general.file_type")
    if isinstance(file_type, int):
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    # no (or an unknown) file type: the type most of the 2-D weights are stored in
    kinds = Counter(t.ggml_type for t in header.tensors if len(t.shape) >= 2)
    if not kinds:
        return None
    try:
        return GGMLQuantizationType(kinds.most_common(1)[0][0]).name
    except ValueError:
        return None
