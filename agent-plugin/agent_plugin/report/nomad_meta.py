"""GPU, engine and model facts as Nomad dynamic node metadata, so jobs can constrain on
``${meta.heteroflow.*}`` (Nomad's own device plugins know NVIDIA only, and not even its
compute capability).

Exactly these keys: ``heteroflow.agent`` ("1"), ``heteroflow.gpu.vendor``,
``heteroflow.gpu.count``, ``heteroflow.gpu.model``, ``heteroflow.gpu.memory_mb`` (the
smallest GPU's, since a task must fit any GPU it gets), ``heteroflow.gpu.cc`` (NVIDIA; the
lowest), ``heteroflow.engines`` and ``heteroflow.models`` (comma lists, for
``set_contains``), and the load figures ``heteroflow.load.{cpu,memory,gpu_temp}``
(heteroflow_contracts/load.py) when the survey has them. On a node with several vendors
the one with the most healthy devices is described. A key that no longer applies is sent
as null, which unsets it. Published with ``POST /v1/client/metadata`` (Nomad >= 1.5), and
only when something changed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from agent_plugin.errors import ReportError
from agent_plugin.models import GpuDevice
from heteroflow_contracts.load import FIGURES, NO_READING

log = logging.getLogger(__name__)

Meta = dict[str, str | None]
GPU_KEYS = ("heteroflow.gpu.vendor", "heteroflow.gpu.model", "heteroflow.gpu.memory_mb",
            "heteroflow.gpu.cc")
_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def node_meta(gpus: Sequence[GpuDevice], engines: Iterable[str],
              model_names: Iterable[str], load: Mapping[str, float] | None = None) -> Meta:
    meta: Meta = {"heteroflow.agent": "1", "heteroflow.engines": _comma_list(engines),
                  "heteroflow.models": _comma_list(model_names), "heteroflow.gpu.count": "0"}
    meta.update(dict.fromkeys(GPU_KEYS))
    if load is not None:  # whole numbers: a new figure is sent only when it moves by one
        meta.update({key: str(round(load[fact])) if fact in load else NO_READING
                     for fact, key, _, _ in FIGURES})
    healthy = [g for g in gpus if g.healthy]
    if not healthy:
        return meta
    vendors = Counter(g.vendor for g in healthy)
    vendor = min(vendors, key=lambda v: (-vendors[v], v))
    mine = [g for g in healthy if g.vendor == vendor]
    names = Counter(g.name for g in mine)
    capabilities = [g.compute_capability for g in mine if g.compute_capability]
    meta.update({
        "heteroflow.gpu.vendor": vendor, "heteroflow.gpu.count": str(len(mine)),
        "heteroflow.gpu.model": min(names, key=lambda n: (-names[n], n)),
        "heteroflow.gpu.memory_mb": str(min(g.memory_total_mb for g in mine)),
        "heteroflow.gpu.cc": min(capabilities, key=_version) if capabilities else None,
    })
    return meta


class NomadMetaPublisher:
    def __init__(self, address: str, token: str | None, *, node_id: str | None = None,
                 node_name: str | None = None) -> None:
        headers = {"X-Nomad-Token": token} if token else {}
        self._http = httpx.AsyncClient(base_url=address.rstrip("/"), headers=headers,
                                       timeout=_TIMEOUT, trust_env=False)
        self.address = address
        self.node_id = node_id
        self._node_name = node_name
        self.published: Meta | None = None  # as Nomad took it last

    async def aclose(self) -> None:
        await self._http.aclose()

    async def publish(self, meta: Meta) -> bool:
        """Send ``meta`` unless Nomad has it already; True when it was sent."""
        if meta == self.published:
            return False
        node_id = self.node_id or await self._resolve_node_id()
        await self._call("POST", "/v1/client/metadata", json={"NodeID": node_id, "Meta": meta})
        self.node_id, self.published = node_id, dict(meta)
        log.info("nomad node metadata published", extra={"nomad_node_id": node_id,
                                                         "meta": meta})
        return True

    async def _resolve_node_id(self) -> str:
        """The local Nomad client's node id; else the node named like this one."""
        agent = await self._call("GET", "/v1/agent/self")
        stats = agent.get("stats") if isinstance(agent, Mapping) else None
        client = stats.get("client") if isinstance(stats, Mapping) else None
        node_id = client.get("node_id") if isinstance(client, Mapping) else None
        if isinstance(node_id, str) and node_id:
            return node_id
        if self._node_name:
            nodes = await self._call("GET", "/v1/nodes")
            for node in nodes if isinstance(nodes, list) else []:
                if isinstance(node, Mapping) and node.get("Name") == self._node_name:
                    return str(node["ID"])
        raise ReportError(f"the Nomad agent at {self.address} runs no client, and no Nomad "
                          f"node is named {self._node_name!r}; set HETEROFLOW_NOMAD_NODE_ID")

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = await self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ReportError(f"Nomad at {self.address} cannot be reached: "
                              f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            # Nomad answers errors as plain text
            raise ReportError(f"Nomad answered {response.status_code} to {method} {path}: "
                              f"{response.text[:300]}",
                              retryable=response.status_code >= 500
                              or response.status_code == 403)
        try:
            return response.json()
        except ValueError as exc:
            raise ReportError(f"Nomad answered {method} {path} with non-JSON") from exc


def _comma_list(items: Iterable[str]) -> str:
    # a comma inside a name would split it in two for set_contains
    return ",".join(sorted({i.replace(",", "_").strip() for i in items if i.strip()}))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in text.split("."))
