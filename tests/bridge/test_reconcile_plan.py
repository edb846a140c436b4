"""decide(): table tests of the reconciler's pure step."""

from __future__ import annotations

from bridge.domain.status import TaskGroupStatus as G
from bridge.domain.status import TaskStatus as T
from bridge.domain.status import derive_group
from bridge.nomad.allocations import ObservedAlloc
from bridge.placement.nomad.plan import GroupRow, JobView, TaskRow, decide

JOB = "hf-qwen"


def alloc(index: int, client: str = "running", *, desired: str = "run", create: int = 10,
          healthy: bool | None = True, node: str = "node-a", event: str = "") -> ObservedAlloc:
    return ObservedAlloc(
        alloc_id=f"alloc-{index}-{create}", job_id=JOB, index=index, node_id=f"id-{node}",
        node_name=node, client_status=client, desired_status=desired, healthy=healthy,
        address=f"127.0.0.1:{20000 + index}", device_ids=(f"GPU-{index}",),
        last_event=event, create_index=create)


def group(*statuses: T, status: G = G.SCHEDULING, job: str | None = JOB) -> GroupRow:
    tasks = tuple(TaskRow(id=f"task-{i}", rank=i, status=s) for i, s in enumerate(statuses))
    return GroupRow(id="tg-1", name="qwen", status=status, status_reason="", job_id=job,
                    current_replicas=0, tasks=tasks)


def view(*allocs: ObservedAlloc, why: str | None = None, stopped: bool = False) -> JobView:
    return JobView(job_id=JOB, group_id="tg-1", allocs=allocs, why_pending=why,
                   stopped=stopped)


class TestTasks:
    def test_running_alloc_fills_node_address_and_gpus(self) -> None:
        plan = decide([group(T.PENDING)], {JOB: view(alloc(0))}, full=False)
        (change,) = plan.tasks
        assert (change.status, change.node_name, change.address, change.gpu_id) == (
            T.RUNNING, "node-a", "127.0.0.1:20000", "GPU-0")
        assert change.expected is T.PENDING
        assert plan.groups[0].status is G.RUNNING and plan.groups[0].current_replicas == 1

    def test_no_alloc_is_pending_with_the_reason(self) -> None:
        why = "Nomad cannot place its replica: 3 nodes have all matching GPUs in use"
        plan = decide([group(T.PENDING)], {JOB: view(why=why)}, full=False)
        assert plan.tasks[0].reason == why and plan.tasks[0].status is T.PENDING
        assert plan.groups[0].reason == why

    def test_rank_follows_alloc_index_and_newest_live_wins(self) -> None:
        old_failed = alloc(1, "failed", create=5, event="Terminated with exit code 1")
        replacement = alloc(1, "pending", create=9, node="node-b")
        plan = decide([group(T.RUNNING, T.FAILED, status=G.RUNNING)],
                      {JOB: view(alloc(0), old_failed, replacement)}, full=False)
        (change,) = [c for c in plan.tasks if c.task_id == "task-1"]
        assert change.status is T.SCHEDULED
        assert change.node_name == "node-b"

    def test_failure_reason_carries_the_exit(self) -> None:
        plan = decide([group(T.RUNNING, status=G.RUNNING)],
                      {JOB: view(alloc(0, "failed", event="Terminated with exit code 137"))},
                      full=False)
        assert plan.tasks[0].status is T.FAILED and "137" in plan.tasks[0].reason
        assert plan.groups[0].status is G.FAILED and plan.groups[0].current_replicas == 0

    def test_sleeping_is_not_overwritten_by_a_running_alloc(self) -> None:
        row = TaskRow(id="task-0", rank=0, status=T.SLEEPING, status_reason="asleep",
                      node_id="id-node-a", node_name="node-a", alloc_id="alloc-0-10",
                      address="127.0.0.1:20000", gpu_id="GPU-0")
        g = GroupRow("tg-1", "qwen", G.SLEEPING, "asleep; a request or `wake` brings it back",
                     JOB, 0, (row,))
        assert decide([g], {JOB: view(alloc(0))}, full=False).empty

    def test_unchanged_is_an_empty_plan(self) -> None:
        row = TaskRow(id="task-0", rank=0, status=T.RUNNING, status_reason="running on node-a",
                      node_id="id-node-a", node_name="node-a", alloc_id="alloc-0-10",
                      address="127.0.0.1:20000", gpu_id="GPU-0")
        g = GroupRow("tg-1", "qwen", G.RUNNING, "", JOB, 1, (row,))
        assert decide([g], {JOB: view(alloc(0))}, full=False).empty

    def test_stopping_alloc(self) -> None:
        plan = decide([group(T.RUNNING, status=G.RUNNING)],
                      {JOB: view(alloc(0, desired="stop"))}, full=False)
        assert plan.tasks[0].status is T.STOPPING and plan.tasks[0].address is None

    def test_lost_node(self) -> None:
        plan = decide([group(T.RUNNING, status=G.RUNNING)], {JOB: view(alloc(0, "lost"))},
                      full=False)
        assert plan.tasks[0].status is T.PENDING and "unreachable" in plan.tasks[0].reason
        assert plan.groups[0].status is G.SCHEDULING

    def test_unhealthy_running_is_starting(self) -> None:
        plan = decide([group(T.SCHEDULED)], {JOB: view(alloc(0, healthy=False))}, full=False)
        assert plan.tasks[0].status is T.STARTING

    def test_illegal_move_is_refused_with_a_note(self) -> None:
        done = group(T.COMPLETED, status=G.COMPLETED)
        plan = decide([done], {JOB: view(alloc(0))}, full=False)
        assert plan.tasks == () and plan.notes and "refused" in plan.notes[0]


class TestJobs:
    def test_unregistered_pending_group_is_registered(self) -> None:
        plan = decide([group(T.PENDING, status=G.PENDING, job=None)], {}, full=True)
        assert plan.register == ("tg-1",)

    def test_vanished_job_is_registered_again(self) -> None:
        plan = decide([group(T.RUNNING, status=G.RUNNING)], {}, full=True)
        assert plan.register == ("tg-1",)

    def test_orphan_job_is_purged_only_on_full_resync(self) -> None:
        orphan = JobView(job_id="hf-gone", group_id="tg-deleted")
        assert decide([], {"hf-gone": orphan}, full=True).purge == (("hf-gone", "tg-deleted"),)
        assert decide([], {"hf-gone": orphan}, full=False).purge == ()

    def test_a_job_whose_registration_is_not_recorded_yet_is_kept(self) -> None:
        fresh = group(T.PENDING, status=G.PENDING, job=None)
        job = JobView(job_id=JOB, group_id=fresh.id)
        assert decide([fresh], {JOB: job}, full=True).purge == ()

    def test_stopped_job_completes_the_group(self) -> None:
        plan = decide([group(T.RUNNING, status=G.RUNNING)],
                      {JOB: view(alloc(0, "complete", desired="stop"), stopped=True)},
                      full=False)
        assert plan.tasks[0].status is T.COMPLETED
        assert plan.groups[0].status is G.COMPLETED


class TestDeriveGroup:
    def rows(self, *statuses: T) -> list[TaskRow]:
        return [TaskRow(id=f"t{i}", rank=i, status=s, status_reason="x")
                for i, s in enumerate(statuses)]

    def test_table(self) -> None:
        cases = [
            ((T.RUNNING, T.RUNNING), (G.RUNNING, 2)),
            ((T.RUNNING, T.PENDING), (G.RUNNING, 1)),
            ((T.SLEEPING, T.SLEEPING), (G.SLEEPING, 0)),
            ((T.SLEEPING, T.RUNNING), (G.RUNNING, 1)),
            ((T.FAILED, T.FAILED), (G.FAILED, 0)),
            ((T.FAILED, T.SCHEDULED), (G.SCHEDULING, 0)),
            ((T.PENDING, T.PENDING), (G.SCHEDULING, 0)),
            ((T.COMPLETED,), (G.COMPLETED, 0)),
        ]
        for statuses, (status, running) in cases:
            got = derive_group(self.rows(*statuses), stopped=False, why_pending=None)
            assert (got[0], got[2]) == (status, running), statuses
