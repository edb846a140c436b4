"""decide(): where local placement starts a group's waiting tasks, and how agents and rows
are made to agree. Pure: the host's answers (installed binaries, importable modules, a free
port) come in as functions, so table tests give fixed ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from bridge.domain.engines import LaunchInput, NotRunnableHere, local_launch
from bridge.domain.models import Engine, GpuVendor, Node, Task, TaskGroup
from bridge.domain.status import TaskStatus
from bridge.placement.local.fit import Fit, fit_gpus
from bridge.placement.local.preempt import Holder, preemptible, preemptible_at, priority_of
from bridge.placement.local.shares import Share, fit_share
from bridge.placement.shared import engine_for_node
from bridge.placement.sharing import QOS_PRIORITY, GpuAsk, gpu_ask, scanned_estimate
from bridge.storage.local_placement import HeldTask
from heteroflow_contracts.gpu_sharing import CoSchedule, mps_limits
from heteroflow_contracts.load import LoadLimits, too_hot

# node id -> what is taken there: GPU indices, and "port:N" for engine ports
Busy = dict[str, set[str]]


@dataclass(frozen=True, slots=True)
class Host:
    """What decide() asks of the machine the engines start on."""

    python: str
    which: Callable[[str], str | None]
    importable: Callable[[str], bool]
    free_port: Callable[[Node, set[str]], int]  # a port not in the taken set
    limits: LoadLimits = field(default_factory=LoadLimits)  # the load thresholds (settings)


@dataclass(frozen=True, slots=True)
class Start:
    """Start ``task`` on ``node``'s GPUs with this engine and command line."""

    task: Task
    node: Node
    gpu_ids: tuple[str, ...]
    vendor: str | None
    engine: Engine
    argv: tuple[str, ...]
    env: dict[str, str]
    health_path: str
    address: str
    port: int
    share: Share | None = None  # silver/bronze: the share of gpu_ids[0] it holds
    preempts: tuple[str, ...] = ()  # lower-priority tasks that must give way first
    preempt_reason: str = ""  # what they are told


@dataclass(frozen=True, slots=True)
class Wait:
    """``task`` stays pending, and says why."""

    task: Task
    reason: str


@dataclass(frozen=True, slots=True)
class AgentFixes:
    back_to_pending: tuple[str, ...]  # task ids whose agent no longer runs them
    strays: tuple[tuple[str, str], ...]  # (node id, task id) engines no task row holds


def busy_from(held: Iterable[HeldTask]) -> Busy:
    """GPUs and ports taken per node; a sleep that released GPU memory keeps only its port."""
    busy: Busy = {}
    for t in held:
        taken = busy.setdefault(t.node_id, set())
        if t.address:
            taken.add("port:" + t.address.rsplit(":", 1)[-1])
        if t.gpu_id and not (t.status is TaskStatus.SLEEPING and t.gpu_released):
            taken.update(t.gpu_id.split(","))
            mine = t.gpu_id.split(",")
            if t.gpu_share:  # a share keeps its GPU's K and budget (docs/gpu-sharing.md)
                mine.append(Share.from_json(t.gpu_share).token())
                taken.add(mine[-1])
            priority = priority_of(t.qos)
            if priority is not None and preemptible_at(priority):
                taken.add(Holder(t.task_id, priority, tuple(mine)).token())
    return busy


def decide(group: TaskGroup, nodes: list[Node], busy: Busy, host: Host) -> list[Start | Wait]:
    """A Start or a Wait for each pending task of the group, first fit over ``nodes``.

    ``busy`` is updated with what each Start takes, so the next task (or group) sees it.
    """
    return [_place(group, task, nodes, busy, host)
            for task in group.tasks if task.status is TaskStatus.PENDING]


def decide_agents(nodes: Iterable[str], held: Iterable[HeldTask],
                  running: Mapping[str, set[str]]) -> AgentFixes:
    """Compare task rows with what each reachable agent runs (``running``: node id -> task
    ids; nodes whose agent did not answer are absent, and nothing is decided for them).

    A settled row its agent does not run (the agent restarted, the node was replaced) goes
    back to pending; an engine no row holds on that node (a start that raced a stop, a
    delete while the agent was away) is stopped, so nothing runs that nobody knows.
    """
    rows_by_node: dict[str, dict[str, bool]] = {n: {} for n in nodes}
    for t in held:
        rows_by_node.setdefault(t.node_id, {})[t.task_id] = t.settled
    lost: list[str] = []
    strays: list[tuple[str, str]] = []
    for node_id, rows_here in rows_by_node.items():
        if node_id not in running:
            continue  # unknown is not lost: wait for the agent
        on_agent = running[node_id]
        lost += [task_id for task_id, settled in rows_here.items()
                 if task_id not in on_agent and settled]
        strays += [(node_id, task_id) for task_id in sorted(on_agent - set(rows_here))]
    return AgentFixes(tuple(lost), tuple(strays))


def _place(group: TaskGroup, task: Task, nodes: list[Node], busy: Busy,
           host: Host) -> Start | Wait:
    if not nodes:
        return Wait(task, "no node agent is online yet")
    reasons: list[str] = []
    ask = gpu_ask(group, task.gpu_required, scanned_estimate(group.model_path, nodes))
    nodes = _ordered(nodes, busy, CoSchedule.parse(group.co_schedule).placement)
    for node in nodes:
        placed = _on_node(group, task, node, busy.setdefault(node.id, set()), ask, host)
        if isinstance(placed, Start):
            return placed
        reasons.append(f"{node.name}: {placed}")
    # No room anywhere: lower-priority holders may give way (docs/gpu-sharing.md,
    # "Preemption"), lowest priority first, as few as it takes, on the first node that works.
    for node in nodes:
        taken = busy[node.id]
        trial = set(taken)
        evicted: list[Holder] = []
        for victim in preemptible(taken, QOS_PRIORITY[group.qos]):
            trial = victim.release(trial)
            evicted.append(victim)
            placed = _on_node(group, task, node, trial, ask, host)
            if isinstance(placed, Start):
                taken.clear()
                taken.update(trial)
                why = (f"preempted by {group.name} ({group.qos.value}, priority "
                       f"{QOS_PRIORITY[group.qos]}) that needed its GPU on {node.name}; it "
                       "waits until a GPU is free")
                return replace(placed, preempts=tuple(v.task_id for v in evicted),
                               preempt_reason=why)
    return Wait(task, "; ".join(reasons))


def _on_node(group: TaskGroup, task: Task, node: Node, taken: set[str], ask: GpuAsk,
             host: Host) -> Start | str:
    """A Start on this node (``taken`` updated with what it takes), or why not."""
    vendor = group.gpu_type.value if group.gpu_type else None
    hot = too_hot(node.facts, host.limits)  # seed step 5, the figures its agent reported
    if hot:
        return f"takes no new replica: {hot}"
    share = None
    if ask.shared:
        sfit = fit_share(node.gpus, taken, ask, vendor)
        share = sfit.share
        fit = Fit((share.gpu,) if share else (), sfit.vendor, sfit.reason)
    else:
        fit = fit_gpus(node.gpus, taken, task.gpu_required, ask.need_mib, vendor)
    if not fit.ok:
        return fit.reason
    try:
        engine = engine_for_node(group, node.engines,
                                 GpuVendor(fit.vendor) if fit.vendor else None)
        launch = local_launch(
            engine, LaunchInput(
                model_path=group.model_path, served_name=group.model_name,
                port=host.free_port(node, taken), gpus=max(1, task.gpu_required),
                sleep=group.idle_timeout_minutes > 0, cpu_only=task.gpu_required == 0),
            python=host.python, which=host.which, importable=host.importable)
    except NotRunnableHere as exc:
        return str(exc)
    port = int(launch.argv[launch.argv.index("--port") + 1])
    address = urlsplit(node.agent_url or "http://127.0.0.1").hostname or "127.0.0.1"
    taken.update(fit.gpu_ids)
    taken.add(f"port:{port}")
    if share is not None:
        taken.add(share.token())
    if preemptible_at(QOS_PRIORITY[group.qos]):
        taken.add(Holder(task.id, QOS_PRIORITY[group.qos],
                         (*fit.gpu_ids, *([share.token()] if share else []))).token())
    env = dict(launch.env)
    if share is not None and ask.isolated:  # silver: MPS limits, as the plugin's Reserve
        env.update(mps_limits(1, share.shares, share.budget_mib))
    # The version's own engine arguments come last, so they win over the defaults.
    return Start(task, node, fit.gpu_ids, fit.vendor, engine,
                 (*launch.argv, *group.engine_args), {**env, **group.env},
                 launch.health_path, f"{address}:{port}", port, share)


def _ordered(nodes: list[Node], busy: Busy, placement: str) -> list[Node]:
    """binpack: the busiest node first (idle nodes stay free for big services); spread: the
    idlest first. Busyness is the GPUs taken; ties keep the given order."""
    def gpus_taken(node: Node) -> int:
        return sum(1 for t in busy.get(node.id, ()) if ":" not in t)
    sign = 1 if placement == "spread" else -1
    return sorted(nodes, key=lambda n: sign * gpus_taken(n))
