"""Updates on the Nomad path: the job is registered again with its update block, Nomad (the
API double, whose deployments follow docs/nomad-consul.md) rolls it out, and the bridge
follows the deployment into rolling_update_state; a version whose allocations turn
unhealthy is reverted by Nomad's auto_revert and the group follows it back."""

from __future__ import annotations

from typing import Any

from tests.integration.test_nomad_placement import Env, nodes_named
from tests.support.nomad_double.runners import AutoRunner, ManualRunner


def _job(env: Env, job_id: str) -> dict[str, Any]:
    return env.double.cluster.store.jobs[("default", job_id)]


async def _state(env: Env, gid: str, state: str, done: bool = True) -> Any:
    g = await env.group(gid)
    rollout = g["rollout"] or {}
    return g if g["rolling_update_state"] == state and rollout.get("done") is done else None


def _healthy_all(env: Env, job_id: str) -> bool:
    """Report every pending allocation running and healthy, as its client would."""
    for a in env.double.allocations(job_id):
        if a["ClientStatus"] == "pending" and a["DesiredStatus"] == "run":
            env.double.set_alloc_status(a["ID"], "running", healthy=True)
    return True


async def test_an_update_re_registers_the_job_and_follows_its_deployment(env_factory) -> None:
    env = await env_factory(runner=AutoRunner())
    g = await env.create(parallelism="split", world_size=2)
    placed = await env.eventually(lambda: _running(env, g["id"]))
    job_id = placed["nomad_job_id"]
    r = await env.api.put(f"/task-groups/{g['id']}/update", json={
        "engine_args": ["--max-model-len", "4096"], "env": {"VLLM_LOGGING_LEVEL": "DEBUG"},
        "max_parallel": 2, "healthy_deadline_seconds": 1800})
    assert r.status_code == 200, r.text
    done = await env.eventually(lambda: _state(env, g["id"], "completed"), timeout=30)
    assert done["update_progress"] == "2 of 2 replicas on version 2"
    assert "deployment successful" in done["rollout"]["reason"]
    job = _job(env, job_id)
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["Config"]["args"][-2:] == ["--max-model-len", "4096"]
    assert task["Env"]["VLLM_LOGGING_LEVEL"] == "DEBUG"
    update = job["TaskGroups"][0]["Update"]
    assert (update["MaxParallel"], update["AutoRevert"], update["HealthCheck"]) == (
        2, True, "checks")
    assert update["HealthyDeadline"] == 1800 * 10**9
    assert update["ProgressDeadline"] > update["HealthyDeadline"]
    assert job["Version"] == 1
    live = [a for a in env.double.allocations(job_id) if a["DesiredStatus"] == "run"]
    assert len(live) == 2 and {a["Job"]["Version"] for a in live} == {1}


async def test_an_unhealthy_version_is_reverted_by_nomad_and_followed(env_factory) -> None:
    env = await env_factory(runner=ManualRunner(), nodes=nodes_named("a100"))
    g = await env.create(parallelism="split", world_size=1)
    placed = await env.eventually(lambda: _placed(env, g["id"]))
    job_id = placed["nomad_job_id"]
    _healthy_all(env, job_id)
    await env.eventually(lambda: _running(env, g["id"]))
    await env.eventually(lambda: _job(env, job_id)["Stable"])  # version 0 deployed: stable

    r = await env.api.put(f"/task-groups/{g['id']}/update",
                          json={"image": "vllm/vllm-openai:broken"})
    assert r.status_code == 200, r.text
    new = await env.eventually(lambda: [
        a for a in env.double.allocations(job_id) if a["Job"]["Version"] == 1
        and a["ClientStatus"] == "pending"], timeout=20)
    env.double.set_alloc_status(new[0]["ID"], "running", healthy=False)
    # Nomad fails the deployment and registers version 0 again (as version 2)
    await env.eventually(lambda: _job(env, job_id)["Version"] == 2, timeout=20)
    assert _job(env, job_id)["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == \
        "vllm/vllm-openai:latest"
    rolling_back = await env.eventually(lambda: _state(env, g["id"], "rollback", done=False))
    assert rolling_back["image"] == "vllm/vllm-openai:latest" and rolling_back["version"] == 1
    # the group's status_reason follows its tasks; the rollout keeps why it rolls back
    assert "rolling back to job version 0" in rolling_back["rollout"]["reason"]
    await env.eventually(lambda: _healthy_all(env, job_id) and _state(env, g["id"], "rollback"),
                         timeout=30)
    audit = (await env.api.get("/audit", params={"object_id": g["id"]})).json()["items"]
    assert any(e["action"] == "task_group.update.failed" for e in audit)


async def test_abandoning_fails_the_deployment_and_nomad_reverts(env_factory) -> None:
    env = await env_factory(runner=ManualRunner(), nodes=nodes_named("a100"))
    g = await env.create(parallelism="split", world_size=1)
    placed = await env.eventually(lambda: _placed(env, g["id"]))
    job_id = placed["nomad_job_id"]
    _healthy_all(env, job_id)
    await env.eventually(lambda: _job(env, job_id)["Stable"])
    r = await env.api.put(f"/task-groups/{g['id']}/update",
                          json={"env": {"SLOW_START": "1"}})
    assert r.status_code == 200, r.text
    await env.eventually(lambda: _job(env, job_id)["Version"] == 1)
    r = await env.api.post(f"/task-groups/{g['id']}/rollout/fail")
    assert r.status_code == 200, r.text
    back = await env.eventually(lambda: _state(env, g["id"], "rollback", done=False))
    assert "Deployment marked as failed - rolling back to job version 0" in \
        back["rollout"]["reason"]
    assert back["env"] == {} and _job(env, job_id)["Version"] == 2


async def test_a_stopped_service_starts_again(env_factory) -> None:
    env = await env_factory(runner=AutoRunner())
    g = await env.create()
    running = await env.eventually(lambda: _running(env, g["id"]))
    r = await env.api.post(f"/tasks/{running['tasks'][0]['id']}/stop")
    assert r.status_code == 200, r.text
    await env.eventually(lambda: _group_status(env, g["id"], "completed"), timeout=20)
    r = await env.api.post(f"/task-groups/{g['id']}/start")
    assert r.status_code == 200, r.text
    await env.eventually(lambda: _running(env, g["id"]), timeout=20)
    assert not _job(env, running["nomad_job_id"])["Stop"]


async def test_scale_down_replaces_a_deployment_that_cannot_progress(env_factory) -> None:
    env = await env_factory(runner=ManualRunner(), nodes=nodes_named("a100"))
    g = await env.create(parallelism="split", world_size=1)
    placed = await env.eventually(lambda: _placed(env, g["id"]))
    job_id = placed["nomad_job_id"]
    _healthy_all(env, job_id)
    await env.eventually(lambda: _running(env, g["id"]))

    async def scaled(n: int) -> Any:
        r = await env.api.put(f"/task-groups/{g['id']}/scale", json={"replicas": n})
        return r if r.status_code == 200 else None

    await env.eventually(lambda: scaled(40))  # far beyond the node's GPUs
    stuck = env.double.cluster.store.latest_deployment(("default", job_id))
    assert stuck["Status"] == "running"
    assert stuck["TaskGroups"]["engine"]["PlacedAllocs"] < 40
    r = await env.api.put(f"/task-groups/{g['id']}/scale", json={"replicas": 1})
    assert r.status_code == 200, r.text
    assert len(r.json()["tasks"]) == 1
    assert env.double.cluster.store.deployments[stuck["ID"]]["Status"] == "cancelled"
    assert _job(env, job_id)["TaskGroups"][0]["Count"] == 1


async def _running(env: Env, gid: str) -> Any:
    g = await env.group(gid)
    return g if g["status"] == "running" and all(
        t["status"] == "running" for t in g["tasks"]) else None


async def _placed(env: Env, gid: str) -> Any:
    g = await env.group(gid)
    return g if g["tasks"] and all(t["alloc_id"] for t in g["tasks"]) else None


async def _group_status(env: Env, gid: str, status: str) -> Any:
    g = await env.group(gid)
    return g if g["status"] == status else None
