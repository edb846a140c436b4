"""follow(): Nomad's deployments (as docs/nomad-consul.md describes them) read into
rolling_update_state, for the registration this rollout made."""

from __future__ import annotations

from typing import Any

from bridge.domain.status import RollingUpdateState as R
from bridge.placement.nomad.deployments import follow

ROLLOUT = {"to_version": 3, "from_version": 2, "registered_after": 10}


def deployment(status: str, *, spec_index: int = 20, version: int = 5, placed: int = 2,
               healthy: int = 1, desired: int = 2, why: str = "") -> dict[str, Any]:
    return {"ID": f"d-{version}", "JobVersion": version, "JobSpecModifyIndex": spec_index,
            "Status": status, "StatusDescription": why,
            "TaskGroups": {"engine": {"DesiredTotal": desired, "PlacedAllocs": placed,
                                      "HealthyAllocs": healthy, "UnhealthyAllocs": 0,
                                      "RequireProgressBy": "2026-01-01T12:20:00Z"}}}


def test_nothing_until_the_new_version_is_registered() -> None:
    assert follow(ROLLOUT, 10, [deployment("successful", spec_index=10)], R.ROLLING) is None
    waiting = follow(ROLLOUT, 20, [deployment("successful", spec_index=10)], R.ROLLING)
    assert waiting is not None and waiting.state is R.ROLLING and not waiting.done


def test_running_shows_progress_and_explains_what_is_not_placed() -> None:
    step = follow(ROLLOUT, 20, [deployment("running", placed=1, healthy=0)], R.ROLLING)
    assert step is not None and step.progress == "0 of 2 replicas on version 3"
    assert "1 new replica(s) not placed yet" in step.reason
    assert "2026-01-01T12:20:00Z" in step.reason


def test_successful_completes() -> None:
    step = follow(ROLLOUT, 20, [deployment("successful", healthy=2)], R.ROLLING)
    assert step is not None and (step.state, step.done) == (R.COMPLETED, True)


def test_auto_revert_is_a_rollback_done_once_the_old_version_is_deployed() -> None:
    failed = deployment("failed", why="Failed due to unhealthy allocations - rolling back "
                                      "to job version 4")
    step = follow(ROLLOUT, 20, [failed], R.ROLLING)
    assert step is not None and (step.state, step.done, step.reverted) == (
        R.ROLLBACK, False, True)
    reverted = deployment("successful", spec_index=30, version=6, healthy=2)
    step = follow(ROLLOUT, 20, [reverted, failed], R.ROLLBACK)
    assert step is not None and (step.state, step.done) == (R.ROLLBACK, True)
    assert "back on version 2" in step.reason


def test_failed_without_revert_and_cancelled_are_failures() -> None:
    for status in ("failed", "cancelled"):
        step = follow(ROLLOUT, 20, [deployment(status, why="Failed due to progress "
                                                           "deadline")], R.ROLLING)
        assert step is not None and (step.state, step.done) == (R.FAILED, True)
        assert "progress deadline" in step.reason
