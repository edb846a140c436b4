"""Parsers for the ``HETEROFLOW_*`` variables more than one process reads.

A comma list is split and trimmed the same way everywhere, so a variable that one process
accepts is never refused by another (``"/models, /srv/models"`` is two folders for all).
"""

from __future__ import annotations

from pathlib import Path

# Model folders that services may mount, and agents scan, when nothing else is configured.
DEFAULT_MODEL_ROOTS = (Path("/models"), Path("/srv/models"), Path("/data/models"),
                       Path("/mnt/models"))


def split_list(value: object, *, lower: bool = False) -> object:
    """A comma-separated string as its trimmed, non-empty items; anything else unchanged
    (a pydantic ``mode="before"`` validator: lists and tuples given in code pass through)."""
    if not isinstance(value, str):
        return value
    items = [item.strip() for item in value.split(",")]
    return [item.lower() if lower else item for item in items if item]


def check_model_roots(roots: tuple[Path, ...]) -> tuple[Path, ...]:
    """Model roots must be absolute folders; ``/`` would allow mounting the whole host."""
    for root in roots:
        if not root.is_absolute() or root == Path("/"):
            raise ValueError(f"model root {root} must be an absolute folder other than /")
    return roots
