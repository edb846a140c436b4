"""The model-format extension point: a reader says which files in a folder make up a
model (a *claim*) and describes a claimed model; the scanner does the walking, the
fingerprints and the bookkeeping. Adding a format is one module plus one registry line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent_plugin.models import ModelInfo


@dataclass(frozen=True, slots=True)
class Claim:
    path: Path  # what the model is called by: a file, or the folder
    files: tuple[Path, ...]  # every file whose size or mtime changes the model
    whole_folder: bool = False  # the folder is the model: do not look inside it further


class ModelFormatReader(Protocol):
    format: str

    def claims(self, folder: Path, files: Sequence[str]) -> list[Claim]:
        """The models among ``files`` (names of the regular files directly in ``folder``)."""
        ...

    def inspect(self, claim: Claim) -> ModelInfo:
        """Describe a claimed model (without a VRAM estimate); raise ``ModelUnreadable``
        with the reason when it cannot be described."""
        ...
