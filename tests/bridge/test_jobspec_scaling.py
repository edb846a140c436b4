"""The `scaling` block of an autoscaled service: Nomad enforces the bounds and keeps the
scaling events, and does not scale itself (enabled = false)."""

from __future__ import annotations

import hcl2

from bridge.placement.nomad.job import scaling_bounds
from tests.support.factories import make_task_group
from tests.support.jobspec_render import rendered


async def test_autoscaled_job_renders_a_disabled_scaling_block() -> None:
    hcl = await rendered(auto_scale=True, min_replicas=1, max_replicas=3,
                         scale_policy={"metric": "concurrent_requests", "target_value": 2})
    group = hcl2.loads(hcl)["job"][0]
    engine = next(iter(group.values()))["group"][0]['"engine"']
    scaling = engine["scaling"][0]
    assert (scaling["enabled"], scaling["min"], scaling["max"]) == (False, 1, 3)
    plain = next(iter(hcl2.loads(await rendered())["job"][0].values()))
    assert "scaling" not in plain["group"][0]['"engine"']


def test_bounds_widen_to_a_windows_count_and_the_count_now() -> None:
    g = make_task_group(auto_scale=True, min_replicas=2, max_replicas=0)
    assert scaling_bounds(g, 2) == (2, 512)  # no limit: Nomad needs a max
    windowed = make_task_group(auto_scale=True, min_replicas=2, max_replicas=4,
                               schedule_window={"windows": [], "outside": "replicas",
                                                "outside_replicas": 1})
    assert scaling_bounds(windowed, 2) == (1, 4)
    assert scaling_bounds(make_task_group(auto_scale=True, max_replicas=2), 3) == (1, 3)
    assert scaling_bounds(make_task_group(), 1) is None
