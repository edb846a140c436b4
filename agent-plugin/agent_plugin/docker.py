"""The Docker Engine API over its unix socket: only what the agent needs (ping, the engine
images present, pause and unpause of a container Nomad started).

Endpoints as documented for the Engine API (v1.41+): ``GET /_ping`` -> ``OK``;
``GET /images/json`` -> ``[{"RepoTags": [...], ...}]``; ``POST /containers/{id}/pause`` and
``/unpause`` -> 204, 404 ``{"message": "No such container: ..."}``, 409 when the container
is not running or already (un)paused, 500 on a daemon error. Paths carry no version
prefix, so the daemon answers with its own current API version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from agent_plugin.errors import EngineRefused, EngineUnreachable, UnknownTask

# Docker's own rule for names, and hex ids; anything else could reach another endpoint.
CONTAINER_REF = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")
_TIMEOUT_S = 10.0


class DockerClient:
    def __init__(self, socket_path: Path, *, timeout_s: float = _TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
            base_url="http://docker", timeout=timeout_s, trust_env=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    def present(self) -> bool:
        """Whether the socket exists at all (no daemon is expected on most test machines)."""
        return self.socket_path.is_socket()

    async def ping(self) -> bool:
        try:
            response = await self._http.get("/_ping")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def image_tags(self) -> list[str]:
        response = await self._request("GET", "/images/json")
        images: Any = response.json()
        tags: list[str] = []
        for image in images if isinstance(images, list) else []:
            for tag in (image.get("RepoTags") or []) if isinstance(image, dict) else []:
                if isinstance(tag, str) and tag != "<none>:<none>":
                    tags.append(tag)
        return tags

    async def pause(self, container: str) -> bool:
        """Freeze the container; False when it was paused already."""
        return await self._toggle(container, "pause", "already paused")

    async def unpause(self, container: str) -> bool:
        """Thaw the container; False when it was not paused."""
        return await self._toggle(container, "unpause", "not paused")

    async def _toggle(self, container: str, verb: str, no_op_words: str) -> bool:
        if not CONTAINER_REF.match(container):
            raise EngineRefused(f"{container!r} is not a container name or id")
        response = await self._request("POST", f"/containers/{container}/{verb}",
                                       accept=(204, 404, 409))
        if response.status_code == 404:
            raise UnknownTask(f"docker has no container {container}: {_message(response)}")
        if response.status_code == 409:
            message = _message(response)
            if no_op_words in message.lower():
                return False
            raise EngineRefused(f"docker refused to {verb} {container}: {message}")
        return True

    async def _request(self, method: str, path: str,
                       accept: tuple[int, ...] = (200,)) -> httpx.Response:
        try:
            response = await self._http.request(method, path)
        except httpx.HTTPError as exc:
            raise EngineUnreachable(
                f"the Docker engine at {self.socket_path} cannot be reached: "
                f"{type(exc).__name__}: {exc}") from exc
        if response.status_code not in accept:
            raise EngineUnreachable(f"docker answered {response.status_code} to {method} "
                                    f"{path}: {_message(response)}")
        return response


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else response.text[:300]
