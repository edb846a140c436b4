"""Why pending: FailedTGAllocs in words."""

from __future__ import annotations

from bridge.nomad.explain import explain_evaluations, explain_failed


def test_missing_and_busy_gpus() -> None:
    text = explain_failed({
        "NodesEvaluated": 5, "NodesFiltered": 3,
        "ConstraintFiltered": {"missing devices": 3},
        "NodesExhausted": 2, "DimensionExhausted": {"devices: no devices match request": 2},
    })
    assert "5 nodes evaluated" in text
    assert "3 nodes have no GPU matching the request" in text
    assert "2 nodes have all matching GPUs in use" in text


def test_compute_capability_rule() -> None:
    text = explain_failed({"NodesEvaluated": 1,
                           "ConstraintFiltered": {"${meta.heteroflow.gpu.cc} version >= 7.5": 1}})
    assert "1 node fail the compute capability rule" in text and "7.5" in text


def test_no_eligible_node_names_empty_datacenters() -> None:
    text = explain_failed({"NodesEvaluated": 0, "NodesAvailable": {"dc1": 0, "dc2": 3}})
    assert "no node is eligible" in text and "dc1" in text and "dc2" not in text


def test_several_replicas() -> None:
    assert "3 replicas" in explain_failed({"NodesEvaluated": 2, "CoalescedFailures": 2,
                                           "DimensionExhausted": {"memory": 2}})


def test_newest_blocked_eval_wins() -> None:
    evals = [
        {"Status": "complete", "CreateIndex": 5,
         "FailedTGAllocs": {"engine": {"NodesEvaluated": 1, "DimensionExhausted": {"cpu": 1}}}},
        {"Status": "blocked", "CreateIndex": 9,
         "FailedTGAllocs": {"engine": {"NodesEvaluated": 4,
                                       "ConstraintFiltered": {"missing devices": 4}}}},
        {"Status": "blocked", "CreateIndex": 7,
         "FailedTGAllocs": {"engine": {"NodesEvaluated": 2, "DimensionExhausted": {"cpu": 2}}}},
    ]
    assert "4 nodes have no GPU" in (explain_evaluations(evals) or "")
    assert explain_evaluations([{"Status": "complete", "FailedTGAllocs": None}]) is None
