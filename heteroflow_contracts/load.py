"""Load thresholds (the seed's placement step 5, docs/gpu-sharing.md "Load thresholds"):
the figures a node agent publishes, under which names, and the one rule both placements
apply: a node above any threshold takes no new replica.

The agent puts the figures in its heartbeat's facts (local placement reads them) and in
Nomad node metadata (the jobspec constrains on them). Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# fact key in the heartbeat, Nomad meta key, words for "why pending", unit
FIGURES = (
    ("cpu_load_percent", "heteroflow.load.cpu", "CPU load", "%"),
    ("memory_used_percent", "heteroflow.load.memory", "memory use", "%"),
    ("gpu_temperature_c", "heteroflow.load.gpu_temp", "GPU temperature", " C"),
)

# Published for a figure the agent cannot read: a Nomad constraint on a missing key rules the
# node out, but an unknown figure must count against no node (as it does locally).
NO_READING = "-1"


@dataclass(frozen=True, slots=True)
class LoadLimits:
    cpu_percent: float = 90.0
    memory_percent: float = 90.0
    gpu_temperature_c: float = 85.0

    def by_fact(self) -> dict[str, float]:
        return {"cpu_load_percent": self.cpu_percent,
                "memory_used_percent": self.memory_percent,
                "gpu_temperature_c": self.gpu_temperature_c}


def too_hot(figures: Mapping[str, object], limits: LoadLimits) -> str | None:
    """Why a node with these figures (fact keys) takes nothing new; None: it may. A figure
    the agent did not report does not count against the node."""
    over = []
    for fact, _meta, words, unit in FIGURES:
        value = figures.get(fact)
        limit = limits.by_fact()[fact]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
            over.append(f"{words} {value:g}{unit} is above the {limit:g}{unit} threshold")
    return "; ".join(over) or None


def meta_constraints(limits: LoadLimits) -> list[tuple[str, str, str]]:
    """The jobspec constraints (attribute, operator, value) of the thresholds."""
    return [(f"${{meta.{meta}}}", "<=", f"{limits.by_fact()[fact]:g}")
            for fact, meta, _, _ in FIGURES]
