"""ID formats, status machines and the deployment-mode table: pure domain, no I/O."""

from __future__ import annotations

import itertools
import re
import time
import uuid

import pytest

from bridge.domain import ids
from bridge.domain.status import (
    TASK_GROUP_TRANSITIONS,
    TASK_TRANSITIONS,
    IllegalTransition,
    TaskGroupStatus,
    TaskStatus,
    transition_task,
    transition_task_group,
)
from bridge.domain.topology import Parallelism, TopologyError, plan_topology


class TestIds:
    def test_task_group_id_is_unix_ns_and_hex4(self) -> None:
        before = time.time_ns()
        gid = ids.new_task_group_id()
        after = time.time_ns()
        m = re.fullmatch(r"tg-(\d+)-([0-9a-f]{4})", gid)
        assert m, gid
        assert before <= int(m.group(1)) <= after
        assert ids.TASK_GROUP_ID.match(gid)

    def test_task_id_names_rank_and_group(self) -> None:
        gid = ids.new_task_group_id()
        for rank in (0, 1, 17):
            tid = ids.new_task_id(gid, rank)
            assert re.fullmatch(rf"task-[0-9a-f]+-r{rank}-{re.escape(gid)}", tid), tid
            assert ids.TASK_ID.match(tid)

    @pytest.mark.parametrize(("make", "pattern"), [
        (ids.new_endpoint_id, r"ep-[0-9a-f]{16}"),
        (ids.new_route_id, r"mr-[0-9a-f]{16}"),
    ])
    def test_hex16_ids(self, make, pattern) -> None:
        assert re.fullmatch(pattern, make())

    def test_api_key_is_sk_uuid4(self) -> None:
        key = ids.new_api_key()
        assert key.startswith("sk-")
        assert uuid.UUID(key[3:]).version == 4
        assert ids.API_KEY.match(key)

    def test_ids_do_not_repeat(self) -> None:
        made = {ids.new_task_group_id() for _ in range(2000)}
        assert len(made) == 2000
        keys = {ids.new_api_key() for _ in range(2000)}
        assert len(keys) == 2000


class TestTaskGroupMachine:
    def test_seed_path(self) -> None:
        s = TaskGroupStatus.PENDING
        for nxt in ("scheduling", "running", "sleeping", "running", "completed"):
            s = transition_task_group(s, TaskGroupStatus(nxt))
        assert s is TaskGroupStatus.COMPLETED

    @pytest.mark.parametrize(("src", "dst"), [
        ("scheduling", "failed"), ("running", "failed"), ("pending", "scheduling"),
    ])
    def test_seed_failure_moves_allowed(self, src: str, dst: str) -> None:
        assert transition_task_group(TaskGroupStatus(src), TaskGroupStatus(dst)) == dst

    def test_every_pair_is_decided_by_the_table(self) -> None:
        for src, dst in itertools.product(TaskGroupStatus, TaskGroupStatus):
            if dst in TASK_GROUP_TRANSITIONS[src]:
                assert transition_task_group(src, dst) is dst
            else:
                with pytest.raises(IllegalTransition) as info:
                    transition_task_group(src, dst)
                assert src.value in str(info.value) and dst.value in str(info.value)
                assert info.value.allowed == sorted(TASK_GROUP_TRANSITIONS[src])

    def test_completed_group_must_be_placed_again_first(self) -> None:
        with pytest.raises(IllegalTransition, match="allowed from here: pending"):
            transition_task_group(TaskGroupStatus.COMPLETED, TaskGroupStatus.RUNNING)


class TestTaskMachine:
    def test_wake_passes_through_waking(self) -> None:
        with pytest.raises(IllegalTransition):
            transition_task(TaskStatus.SLEEPING, TaskStatus.RUNNING)
        s = transition_task(TaskStatus.SLEEPING, TaskStatus.WAKING)
        assert transition_task(s, TaskStatus.RUNNING) is TaskStatus.RUNNING

    def test_replacement_passes_through_stopping(self) -> None:
        s = transition_task(TaskStatus.RUNNING, TaskStatus.STOPPING)
        assert transition_task(s, TaskStatus.COMPLETED) is TaskStatus.COMPLETED

    def test_completed_only_starts_again(self) -> None:
        assert transition_task(TaskStatus.COMPLETED, TaskStatus.PENDING) is TaskStatus.PENDING
        for dst in set(TaskStatus) - {TaskStatus.PENDING}:
            with pytest.raises(IllegalTransition, match="allowed from here: pending"):
                transition_task(TaskStatus.COMPLETED, dst)

    def test_failed_task_is_retried_or_replaced(self) -> None:
        assert TaskStatus.PENDING in TASK_TRANSITIONS[TaskStatus.FAILED]  # retry
        assert TaskStatus.RUNNING in TASK_TRANSITIONS[TaskStatus.FAILED]  # Nomad rescheduled
        assert TaskStatus.SLEEPING not in TASK_TRANSITIONS[TaskStatus.FAILED]

    def test_stopping_only_ends(self) -> None:
        assert TASK_TRANSITIONS[TaskStatus.STOPPING] == {TaskStatus.COMPLETED, TaskStatus.FAILED}

    def test_every_pair_is_decided_by_the_table(self) -> None:
        for src, dst in itertools.product(TaskStatus, TaskStatus):
            allowed = dst in TASK_TRANSITIONS[src]
            try:
                transition_task(src, dst)
                assert allowed
            except IllegalTransition:
                assert not allowed


class TestTopology:
    @pytest.mark.parametrize(("mode", "gpus", "world", "expect"), [
        # mode, gpu_required, world_size -> (world, nodes, tasks, gpus per task)
        ("none", 1, None, (1, 1, 1, 1)),
        ("none", 4, None, (1, 1, 1, 4)),
        ("none", 2, 1, (1, 1, 1, 2)),
        ("tensor_parallel", 4, None, (4, 1, 1, 4)),
        ("tensor_parallel", 1, 8, (8, 1, 1, 8)),
        ("tensor_parallel", 2, 2, (2, 1, 1, 2)),
        ("split", 1, 4, (4, 1, 4, 1)),
        ("split", 3, 4, (4, 1, 4, 1)),  # split is one GPU per replica, whatever was asked
        ("split", 1, 9, (9, 2, 9, 1)),
        ("data_parallel", 2, 8, (8, 1, 8, 2)),
        ("data_parallel", 1, 16, (16, 2, 16, 1)),
        ("data_parallel", 1, 17, (17, 3, 17, 1)),
        ("split", 0, 3, (3, 1, 3, 0)),  # CPU-only replicas stay CPU-only
    ])
    def test_table(self, mode: str, gpus: int, world: int | None,
                   expect: tuple[int, int, int, int]) -> None:
        t = plan_topology(Parallelism(mode), gpus, world)
        assert (t.world_size, t.node_count, t.task_count, t.gpus_per_task) == expect

    @pytest.mark.parametrize(("mode", "gpus", "world", "field"), [
        ("none", 1, 4, "world_size"),
        ("tensor_parallel", 1, 9, "world_size"),  # one node holds at most 8
        ("tensor_parallel", 2, 4, "gpu_required"),
        ("tensor_parallel", 0, None, "gpu_required"),
        ("split", 1, None, "world_size"),
        ("data_parallel", 1, None, "world_size"),
        ("data_parallel", 1, 513, "world_size"),
    ])
    def test_impossible_shapes_name_the_field(self, mode, gpus, world, field) -> None:
        with pytest.raises(TopologyError) as info:
            plan_topology(Parallelism(mode), gpus, world)
        assert info.value.field == field
        assert str(info.value)
