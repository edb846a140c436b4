"""The format registry, and ``claim_path`` for describing a single path."""

from __future__ import annotations

from pathlib import Path

from agent_plugin.errors import ModelUnreadable
from agent_plugin.scanner.base import Claim, ModelFormatReader
from agent_plugin.scanner.gguf_format import GgufReader
from agent_plugin.scanner.huggingface import HuggingFaceReader

# HuggingFace first: a folder it claims is not searched for loose GGUF files' siblings.
FORMATS: dict[str, ModelFormatReader] = {
    "huggingface": HuggingFaceReader(),
    "gguf": GgufReader(),
}


def claim_path(path: Path) -> tuple[ModelFormatReader, Claim]:
    """The reader and claim for one path: a GGUF file (any shard of a split model) or a
    HuggingFace folder."""
    if path.is_dir():
        folder, wanted = path, path
    elif path.is_file():
        folder, wanted = path.parent, path
    else:
        raise ModelUnreadable(f"{path} does not exist")
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    for reader in FORMATS.values():
        for claim in reader.claims(folder, files):
            if claim.path == wanted or wanted in claim.files:
                return reader, claim
    raise ModelUnreadable(f"{path} is neither a GGUF file nor a HuggingFace model folder "
                          "(config.json with weights and a tokenizer)")
