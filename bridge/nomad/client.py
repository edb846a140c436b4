"""NomadClient: the one module that talks to Nomad's HTTP API.

python-nomad is synchronous and lacks what placement needs (scale, blocking queries with
``X-Nomad-Index``, dynamic node metadata, check-and-set helpers; it also defaults to TLS
verification off), so this is a thin async client over httpx, the bridge's one outbound
HTTP library. Nomad's failures are translated here into bridge errors:

* transport errors, 502/503/504 and leaderless 500s are transient: retried with backoff
  (tenacity), then ``NomadUnavailable``;
* a check-and-set loss (500 ``Enforcing job modify index ...``) is ``NomadConflict``, never
  retried blindly; so is 400 ``job scaling blocked due to active deployment``;
* other 400/500 answers are Nomad refusing the request: ``NomadRejected`` with its text;
* 403 is ``NomadForbidden`` (our token), 404 ``NomadNotFound``.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from bridge.errors import (
    NomadConflict,
    NomadForbidden,
    NomadNotFound,
    NomadRejected,
    NomadUnavailable,
)
from bridge.settings import BridgeSettings

log = logging.getLogger(__name__)

CAS_PREFIX = "Enforcing job modify index"
_TRANSIENT_500 = ("No cluster leader", "rpc error", "connection refused", "EOF")
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Indexed:
    """A read with the ``X-Nomad-Index`` to pass to the next blocking query."""

    index: int
    value: Any


class NomadClient:
    def __init__(self, settings: BridgeSettings, *, attempts: int = 4) -> None:
        assert settings.nomad_addr, "NOMAD_ADDR is not set"
        headers = {"X-Nomad-Token": settings.nomad_token} if settings.nomad_token else {}
        self._params: dict[str, str] = {"namespace": settings.nomad_namespace}
        if settings.nomad_region:
            self._params["region"] = settings.nomad_region
        self._http = httpx.AsyncClient(
            base_url=settings.nomad_addr.rstrip("/"), headers=headers,
            verify=_tls_context(settings), timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._attempts = attempts
        self.address = settings.nomad_addr
        # Nomad's certificates name server.<region>.nomad, not the address we dial: verify
        # against that name (like NOMAD_TLS_SERVER_NAME does for the nomad CLI).
        self._ext: dict[str, Any] = (
            {"sni_hostname": settings.nomad_tls_server_name}
            if settings.nomad_tls_server_name else {})

    async def close(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ jobs

    async def parse(self, hcl: str) -> Json:
        job: Json = await self._call("POST", "/v1/jobs/parse",
                                     json={"JobHCL": hcl, "Canonicalize": True})
        return job

    async def register(
        self, job: Json, *, modify_index: int | None, preserve_counts: bool = False
    ) -> Json:
        """Register with check-and-set: ``modify_index`` None means "only if new"."""
        body = {"Job": job, "EnforceIndex": True, "JobModifyIndex": modify_index or 0,
                "PreserveCounts": preserve_counts}
        result: Json = await self._call("POST", "/v1/jobs", json=body)
        return result

    async def plan(self, job: Json) -> Json:
        result: Json = await self._call("POST", f"/v1/job/{job['ID']}/plan",
                                        json={"Job": job, "Diff": True})
        return result

    async def job(self, job_id: str) -> Json | None:
        try:
            found: Json = await self._call("GET", f"/v1/job/{job_id}")
        except NomadNotFound:
            return None
        return found

    async def jobs(self, prefix: str = "hf-") -> Indexed:
        return await self._indexed("GET", "/v1/jobs", params={"prefix": prefix, "meta": "true"})

    async def deregister(self, job_id: str, *, purge: bool = True) -> Json | None:
        try:
            result: Json = await self._call("DELETE", f"/v1/job/{job_id}",
                                            params={"purge": str(purge).lower()})
        except NomadNotFound:
            return None  # already gone: what we wanted
        return result

    async def scale(self, job_id: str, group: str, count: int, message: str) -> Json:
        body = {"Count": count, "Target": {"Job": job_id, "Group": group}, "Message": message}
        result: Json = await self._call("POST", f"/v1/job/{job_id}/scale", json=body)
        return result

    async def latest_deployment(self, job_id: str) -> Json | None:
        """The job's most recent deployment (None: it never had one)."""
        try:
            found: Json | None = await self._call("GET", f"/v1/job/{job_id}/deployment")
        except NomadNotFound:
            return None
        return found

    async def evaluate(self, job_id: str, *, force_reschedule: bool = False) -> Json:
        """Re-evaluate a job; with force_reschedule failed allocations are placed again."""
        result: Json = await self._call("POST", f"/v1/job/{job_id}/evaluate", json={
            "JobID": job_id, "EvalOptions": {"ForceReschedule": force_reschedule}})
        return result

    async def job_deployments(self, job_id: str) -> list[Json]:
        """The job's deployments, newest first (none for a job Nomad does not know)."""
        try:
            found: list[Json] = await self._call("GET", f"/v1/job/{job_id}/deployments")
        except NomadNotFound:
            return []
        return found or []

    async def fail_deployment(self, deployment_id: str) -> Json:
        """Abandon a deployment; with auto_revert Nomad goes back to the last stable job."""
        result: Json = await self._call("POST", f"/v1/deployment/fail/{deployment_id}",
                                        json={"DeploymentID": deployment_id})
        return result

    async def job_evaluations(self, job_id: str) -> list[Json]:
        evals: list[Json] = await self._call("GET", f"/v1/job/{job_id}/evaluations")
        return evals


    # ------------------------------------------------------------------ allocations, nodes

    async def allocations(self, *, index: int = 0, wait: str = "30s") -> Indexed:
        """Every allocation with its resources (ports, device IDs), as a blocking query."""
        params = {"resources": "true", "task_states": "true"}
        if index:
            params |= {"index": str(index), "wait": wait}
        return await self._indexed("GET", "/v1/allocations", params=params)

    async def allocations_of(self, job_id: str) -> list[Json]:
        """One job's allocations with their resources (the job endpoint gives stubs only)."""
        found: list[Json] = await self._call("GET", "/v1/allocations", params={
            "resources": "true", "filter": f'JobID == "{job_id}"'})
        return found

    async def nodes(self) -> list[Json]:
        nodes: list[Json] = await self._call("GET", "/v1/nodes", params={"resources": "true"})
        return nodes

    async def node(self, node_id: str) -> Json:
        node: Json = await self._call("GET", f"/v1/node/{node_id}")
        return node


    # ------------------------------------------------------------------ events

    async def events(
        self, *, index: int, topics: list[str]
    ) -> AsyncGenerator[Json, None]:
        """The NDJSON event stream from ``index`` (inclusive). Heartbeats ``{}`` are dropped.

        The stream simply ends when Nomad closes it; the caller reconnects and resyncs.
        """
        params = httpx.QueryParams({**self._params, "index": str(index), "topic": topics})
        timeout = httpx.Timeout(connect=5.0, read=90.0, write=10.0, pool=5.0)
        try:
            async with self._http.stream("GET", "/v1/event/stream", params=params,
                                         timeout=timeout, extensions=self._ext) as resp:
                if resp.status_code >= 400:
                    text = (await resp.aread()).decode(errors="replace")
                    raise _translate(resp.status_code, text)
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    frame: Json = json.loads(line)
                    if frame:
                        yield frame
        except httpx.TransportError as exc:
            raise NomadUnavailable(f"Nomad event stream at {self.address} broke: {exc}",
                                   details={"address": self.address}) from exc

    # ------------------------------------------------------------------ plumbing

    async def _indexed(self, method: str, path: str, **kwargs: Any) -> Indexed:
        resp = await self._send(method, path, **kwargs)
        return Indexed(int(resp.headers.get("X-Nomad-Index", "0") or 0), resp.json())

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self._send(method, path, **kwargs)
        return resp.json() if resp.content else None

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        params = {**self._params, **kwargs.pop("params", {})}
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(NomadUnavailable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.2, max=3.0), reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    resp = await self._http.request(method, path, params=params,
                                                    extensions=self._ext, **kwargs)
                except httpx.TransportError as exc:
                    raise NomadUnavailable(f"cannot reach Nomad at {self.address}: {exc}",
                                           details={"address": self.address}) from exc
                if resp.status_code >= 400:
                    raise _translate(resp.status_code, resp.text)
                return resp
        raise AssertionError("unreachable")  # pragma: no cover


def _translate(status: int, text: str) -> Exception:
    text = text.strip()
    details = {"nomad_status": status, "nomad_message": text[:2000]}
    if status == 403:
        return NomadForbidden(f"Nomad refused our token: {text}", details=details)
    if status == 404:
        return NomadNotFound(text or "not found in Nomad", details=details)
    if text.startswith(CAS_PREFIX):
        return NomadConflict(f"the Nomad job changed under us: {text}", details=details)
    if "blocked due to active deployment" in text:
        return NomadConflict("Nomad is still rolling out the last change (an active "
                             "deployment blocks scaling); retry when it finishes",
                             details=details)
    if status in (502, 503, 504) or (status == 500 and any(t in text for t in _TRANSIENT_500)):
        return NomadUnavailable(f"Nomad is unavailable ({status}): {text}", details=details)
    return NomadRejected(f"Nomad refused the request: {text}", details=details)


def _tls_context(settings: BridgeSettings) -> ssl.SSLContext | bool:
    if settings.nomad_skip_verify:
        log.warning("NOMAD_SKIP_VERIFY is set: Nomad's TLS certificate is not verified")
        return False
    if not (settings.nomad_cacert or settings.nomad_client_cert):
        return True
    context = ssl.create_default_context(
        cafile=str(settings.nomad_cacert) if settings.nomad_cacert else None)
    if settings.nomad_client_cert and settings.nomad_client_key:
        context.load_cert_chain(str(settings.nomad_client_cert), str(settings.nomad_client_key))
    return context
