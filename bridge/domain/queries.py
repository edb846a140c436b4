"""What a list of task groups or tasks is filtered by (query parameters, as the API takes them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GroupFilter:
    status: str | None = None
    name: str | None = None  # substring
    model_name: str | None = None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    group_id: str | None = None
    status: str | None = None
    node_id: str | None = None
