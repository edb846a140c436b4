"""Who may give way to a higher-priority task without Nomad (docs/gpu-sharing.md,
"Preemption"): the same rule as Nomad's scheduler, a holder whose priority is at least 10
below, lowest first. Pure.

Each placed task's holding rides in ``Busy`` as ``held:<task id>:<priority>:<tokens>``
(its GPU indices and share token, ``|``-separated), so a preemption can take exactly what
that task held off the node's taken set.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.domain.models import QoS
from bridge.placement.local.shares import held_shares
from bridge.placement.sharing import PREEMPT_DELTA, QOS_PRIORITY

PREFIX = "held:"


@dataclass(frozen=True, slots=True)
class Holder:
    task_id: str
    priority: int
    tokens: tuple[str, ...]  # what it takes from its node's taken set (not its port)

    def token(self) -> str:
        return f"{PREFIX}{self.task_id}:{self.priority}:{'|'.join(self.tokens)}"

    @classmethod
    def parse(cls, token: str) -> Holder:
        task_id, priority, tokens = token[len(PREFIX):].split(":", 2)
        return cls(task_id, int(priority), tuple(t for t in tokens.split("|") if t))

    def release(self, taken: set[str]) -> set[str]:
        """``taken`` without this holder: its GPUs are free unless another holder (a
        co-tenant of a shared GPU) still names them."""
        rest = taken - {self.token(), *self.tokens}
        still = {t for h in holders(rest) for t in h.tokens} | set(held_shares(rest))
        return rest | (set(self.tokens) & still)


def holders(taken: set[str]) -> list[Holder]:
    return [Holder.parse(t) for t in taken if t.startswith(PREFIX)]


def preemptible(taken: set[str], priority: int) -> list[Holder]:
    """The holders a task of ``priority`` may evict, lowest priority first."""
    return sorted((h for h in holders(taken) if h.priority <= priority - PREEMPT_DELTA),
                  key=lambda h: (h.priority, h.task_id))


def priority_of(qos: str | None) -> int | None:
    """A held row's priority from its group's QoS; None when unknown (never preempted)."""
    try:
        return QOS_PRIORITY[QoS(qos)] if qos else None
    except ValueError:
        return None


def preemptible_at(priority: int | None) -> bool:
    """Whether any tier could ever preempt a holder of this priority (gold cannot be), so
    only such holders are written into Busy."""
    return priority is not None and priority <= max(QOS_PRIORITY.values()) - PREEMPT_DELTA
