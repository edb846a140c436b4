"""Local placement's pure steps: fit_gpus, decide (a group's pending tasks) and
decide_agents (rows against what the agents run). No database, agent or engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.domain.models import Engine, GpuVendor, Node, Task
from bridge.domain.status import TaskStatus
from bridge.placement.local.decide import (
    Host,
    Start,
    Wait,
    busy_from,
    decide,
    decide_agents,
)
from bridge.placement.local.fit import fit_gpus
from bridge.storage.local_placement import HeldTask
from tests.support.factories import make_task_group

T = TaskStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def gpu(index: int, free_mb: int = 80_000, vendor: str = "nvidia",
        healthy: bool = True) -> dict[str, Any]:
    return {"index": index, "vendor": vendor, "memory_free_mb": free_mb, "healthy": healthy}


def node(name: str = "n1", gpus: list[dict[str, Any]] | None = None,
         engines: tuple[str, ...] = ("vllm",), url: str = "http://10.0.0.5:7070") -> Node:
    return Node(id=f"node-{name}", name=name, status="online", status_reason="",
                agent_url=url, nomad_node_id=None, facts={}, gpus=gpus or [],
                skipped_vendors={}, engines=list(engines), models=[], last_heartbeat=NOW,
                created_at=NOW)


def task(rank: int = 0, status: TaskStatus = T.PENDING, gpus: int = 1) -> Task:
    return Task(id=f"tg-1-abcd-{rank}", group_id="tg-1-abcd", rank=rank, status=status,
                status_reason="", image="img", gpu_required=gpus, gpu_type=None, gpu_id=None,
                node_id=None, model_path="/models/m", ports=[], volumes=[],
                estimated_gpu_memory_mb=None)


def host(installed: tuple[str, ...] = ("vllm",), binaries: tuple[str, ...] = ()) -> Host:
    ports = iter(range(20000, 20100))
    return Host(python="/py", which=lambda b: f"/bin/{b}" if b in binaries else None,
                importable=lambda m: m.split(".")[0] in installed,
                free_port=lambda _node, _taken: next(ports))


class TestFitGpus:
    def test_no_gpu_needed_fits_anywhere(self) -> None:
        fit = fit_gpus([], set(), 0, None, None)
        assert fit.ok and fit.gpu_ids == () and fit.vendor is None

    def test_the_roomiest_gpus_in_index_order(self) -> None:
        gpus = [gpu(0, 10_000), gpu(1, 70_000), gpu(2, 50_000), gpu(3, 60_000)]
        fit = fit_gpus(gpus, set(), 2, None, None)
        assert fit.ok and fit.gpu_ids == ("1", "3") and fit.vendor == "nvidia"

    def test_busy_and_unhealthy_gpus_are_skipped(self) -> None:
        gpus = [gpu(0), gpu(1, healthy=False), gpu(2)]
        fit = fit_gpus(gpus, {"0"}, 1, None, None)
        assert fit.gpu_ids == ("2",)

    def test_too_few_free_says_how_many(self) -> None:
        fit = fit_gpus([gpu(0), gpu(1)], {"1"}, 2, None, None)
        assert not fit.ok and fit.reason == "needs 2 GPU(s); 1 of 2 GPUs are free"

    def test_vram_filter_is_in_the_reason(self) -> None:
        fit = fit_gpus([gpu(0, 8_000), gpu(1, 30_000)], set(), 2, 16_000, None)
        assert fit.reason == "needs 2 GPU(s); 2 of 2 GPUs are free, 1 with 16000 MiB free"

    def test_only_the_asked_vendor(self) -> None:
        fit = fit_gpus([gpu(0), gpu(1, vendor="amd")], set(), 1, None, "amd")
        assert fit.gpu_ids == ("1",) and fit.vendor == "amd"
        none = fit_gpus([gpu(0)], set(), 1, None, "ascend")
        assert none.reason == "this machine has no healthy ascend GPU"


class TestDecide:
    def test_no_online_node(self) -> None:
        group = make_task_group(tasks=[task()])
        assert decide(group, [], {}, host()) == [Wait(group.tasks[0],
                                                      "no node agent is online yet")]

    def test_starts_on_the_first_fit_and_takes_gpus_and_port(self) -> None:
        group = make_task_group(tasks=[task()])
        here = node(gpus=[gpu(0), gpu(1)])
        busy: dict[str, set[str]] = {here.id: {"0"}}
        [start] = decide(group, [here], busy, host())
        assert isinstance(start, Start)
        assert (start.node, start.gpu_ids, start.engine) == (here, ("1",), Engine.VLLM)
        assert (start.address, start.port) == ("10.0.0.5:20000", 20000)
        assert "--port" in start.argv and start.argv[start.argv.index("--port") + 1] == "20000"
        assert busy[here.id] == {"0", "1", "port:20000"}

    def test_each_pending_task_sees_what_the_one_before_took(self) -> None:
        group = make_task_group(tasks=[task(0), task(1, T.RUNNING), task(2)])
        here = node(gpus=[gpu(0), gpu(1)])
        outcomes = decide(group, [here], {}, host())
        assert [type(o) for o in outcomes] == [Start, Start]
        assert [o.task.rank for o in outcomes] == [0, 2]
        assert {o.gpu_ids for o in outcomes if isinstance(o, Start)} == {("0",), ("1",)}

    def test_no_fit_anywhere_gives_each_nodes_reason(self) -> None:
        group = make_task_group(tasks=[task(gpus=2)])
        outcomes = decide(group, [node("a", [gpu(0)]), node("b", [])], {}, host())
        assert outcomes == [Wait(group.tasks[0], "a: needs 2 GPU(s); 1 of 1 GPUs are free; "
                                                 "b: this machine has no healthy GPU")]

    def test_an_engine_missing_here_moves_on_to_the_next_node(self) -> None:
        group = make_task_group(engine=Engine.SGLANG, tasks=[task()])
        first, second = node("a", [gpu(0)]), node("b", [gpu(0)])
        [wait] = decide(group, [first, second], {}, host(installed=("vllm",)))
        assert isinstance(wait, Wait)
        assert wait.reason == ("a: sglang is not installed on this machine; "
                               "b: sglang is not installed on this machine")

    def test_engine_from_the_vendor_chain_as_installed_on_the_node(self) -> None:
        group = make_task_group(engine=None, gpu_type=GpuVendor.NVIDIA, tasks=[task()])
        [start] = decide(group, [node(gpus=[gpu(0)], engines=("sglang",))], {},
                         host(installed=("sglang",)))
        assert isinstance(start, Start) and start.engine is Engine.SGLANG

    def test_cpu_only_runs_llamacpp(self) -> None:
        group = make_task_group(engine=None, gpu_required=0, tasks=[task(gpus=0)])
        [start] = decide(group, [node(gpus=[])], {}, host(binaries=("llama-server",)))
        assert isinstance(start, Start)
        assert (start.engine, start.gpu_ids, start.vendor) == (Engine.LLAMACPP, (), None)
        assert start.argv[0] == "/bin/llama-server"


class TestBusyAndAgents:
    @staticmethod
    def held(task_id: str, node_id: str = "n1", status: TaskStatus = T.RUNNING,
             gpu_id: str | None = "0", released: bool = False,
             settled: bool = True) -> HeldTask:
        return HeldTask(task_id=task_id, node_id=node_id, status=status, gpu_id=gpu_id,
                        address="127.0.0.1:20001", gpu_released=released, settled=settled)

    def test_a_sleep_that_released_memory_keeps_only_its_port(self) -> None:
        busy = busy_from([self.held("a", gpu_id="0,1"),
                          self.held("b", status=T.SLEEPING, gpu_id="2", released=True),
                          self.held("c", status=T.SLEEPING, gpu_id="3")])
        assert busy == {"n1": {"0", "1", "3", "port:20001"}}

    def test_rows_the_agent_lost_go_back_unless_just_placed(self) -> None:
        held = [self.held("a"), self.held("b", settled=False), self.held("c")]
        fixes = decide_agents(["n1"], held, {"n1": {"c"}})
        assert fixes.back_to_pending == ("a",)
        assert fixes.strays == ()

    def test_engines_no_row_holds_are_strays(self) -> None:
        fixes = decide_agents(["n1", "n2"], [self.held("a")], {"n1": {"a", "x"}, "n2": {"y"}})
        assert fixes.strays == (("n1", "x"), ("n2", "y"))

    def test_an_agent_that_did_not_answer_decides_nothing(self) -> None:
        fixes = decide_agents(["n1"], [self.held("a"), self.held("z", node_id="n9")], {})
        assert fixes.back_to_pending == () and fixes.strays == ()
