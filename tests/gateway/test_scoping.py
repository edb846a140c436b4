"""Key scoping as a matrix (docs/gateway-scoping.md): a key reaches only what its endpoint
may call; adding a route to a model never widens who may call it."""

from __future__ import annotations

import httpx

from tests.support.gateway_harness import Stack, wait_until


def test_scoping_matrix(stack: Stack) -> None:
    world, gw = stack.world, stack.gateway
    doubles = {n: stack.double(f"sc-{n}", f"sc-{n}") for n in "abcd"}
    groups = {n: world.add_group(f"sc-{n}", route=n in "abc") for n in "abcd"}
    tasks = {n: groups[n].add_task(doubles[n]) for n in "abcd"}
    for n in "abc":
        gw.wait_usable(groups[n].id, 1)
    gw.wait_serving(groups["a"].key, "sc-a")
    b_key = groups["b"].key
    assert gw.chat(b_key, "sc-a").status_code == 403
    # B's capacity lent to model a: a's callers gain a tier, B's keys gain nothing.
    world.add_route("sc-a", group_id=groups["b"].id, priority=1, version="lent-b")
    world.add_route("sc-alias", group_id=groups["c"].id, version="alias-c")
    world.add_route("sc-alias", group_id=groups["d"].id, version="alias-d")
    gw.wait_usable(groups["d"].id, 1)  # routed now, so probed

    revoked = world.add_key(groups["a"].endpoint_id)
    world.revoke(revoked)
    keys = {n: groups[n].key for n in "abcd"} | {"none": "sk-none", "revoked": revoked}
    expected = {
        "a": {"sc-a": 200, "sc-b": 403, "sc-alias": 403, "sc-c": 403, "nope": 404},
        "b": {"sc-a": 403, "sc-b": 200, "sc-alias": 403, "sc-c": 403, "nope": 404},
        "c": {"sc-a": 403, "sc-b": 403, "sc-alias": 200, "sc-c": 200, "nope": 404},
        "d": {"sc-a": 403, "sc-b": 403, "sc-alias": 200, "sc-c": 403, "nope": 404},
        "none": dict.fromkeys(("sc-a", "sc-b", "sc-alias", "sc-c", "nope"), 401),
        "revoked": dict.fromkeys(("sc-a", "sc-b", "sc-alias", "sc-c", "nope"), 401),
    }

    def matrix() -> dict[str, dict[str, int]]:
        return {who: {model: gw.chat(keys[who], model).status_code for model in row}
                for who, row in expected.items()}

    wait_until(lambda: matrix() == expected, timeout=30, what="the scoping matrix")
    for who, model in (("c", "sc-alias"), ("d", "sc-alias")):
        served = {gw.chat(keys[who], model).headers["x-heteroflow-backend"] for _ in range(12)}
        assert served == {tasks["c"], tasks["d"]}
    served = {gw.chat(b_key, "sc-b").headers["x-heteroflow-backend"] for _ in range(6)}
    assert served == {tasks["b"]}
    # a's callers are served by the lent tier when a's own backend is gone.
    doubles["a"].kill()
    wait_until(lambda: gw.usable(groups["a"].id) == 0, what="a's backend out")
    r = gw.chat(groups["a"].key, "sc-a")
    assert (r.status_code, r.headers["x-heteroflow-backend"]) == (200, tasks["b"])
    assert gw.chat(b_key, "sc-a").status_code == 403  # still, with a down

    def listed(key: str) -> list[str]:
        r = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {key}"},
                      timeout=10)
        return [m["id"] for m in r.json()["data"]]

    assert listed(keys["a"]) == ["sc-a"]
    assert listed(keys["b"]) == ["sc-b"]
    assert listed(keys["c"]) == ["sc-alias", "sc-c"]
    assert listed(keys["d"]) == ["sc-alias"]
