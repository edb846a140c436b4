"""Which inference engines this node can run, for the heartbeat and Nomad's node metadata.

An engine is usable when its Python package can be imported (looked up, never imported:
importing vLLM takes seconds and a GPU stack), one of its programs is on the tool search
path, or a Docker engine on this node holds one of its images. Names are the bridge's
engine names. One registry entry per engine; a new engine is one line.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import shutil
from dataclasses import dataclass

from agent_plugin.docker import DockerClient
from agent_plugin.errors import AgentError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineProbe:
    modules: tuple[tuple[str, ...], ...] = ()  # any of these sets, all importable
    programs: tuple[str, ...] = ()  # any of these on the search path
    image_hints: tuple[str, ...] = ()  # an image repository containing one of these


# Images are matched in this order, the more specific first: a Moore Threads vLLM image
# names "vllm" too.
ENGINE_PROBES: dict[str, EngineProbe] = {
    "vllm-mtt": EngineProbe(modules=(("vllm", "torch_musa"),),
                            image_hints=("mtt", "musa")),
    "llamacpp": EngineProbe(modules=(("llama_cpp",),), programs=("llama-server",),
                            image_hints=("llama.cpp", "llama-cpp", "llamacpp")),
    "sglang": EngineProbe(modules=(("sglang",),), image_hints=("sglang",)),
    "vllm": EngineProbe(modules=(("vllm",),), programs=("vllm",), image_hints=("vllm",)),
    "mindie": EngineProbe(programs=("mindieservice_daemon",), image_hints=("mindie",)),
    "transformers": EngineProbe(modules=(("transformers", "torch"),)),
}


async def usable_engines(search_path: str, docker: DockerClient | None = None,
                         probes: dict[str, EngineProbe] | None = None) -> list[str]:
    registry = ENGINE_PROBES if probes is None else probes
    found = set(await asyncio.to_thread(_local_engines, registry, search_path))
    if docker is not None and docker.present():
        try:
            tags = await docker.image_tags()
        except AgentError as exc:
            log.info("engine images not listed", extra={"reason": exc.message})
        else:
            found.update(engines_in_images(tags, registry))
    return sorted(found)


def engines_in_images(tags: list[str], probes: dict[str, EngineProbe]) -> set[str]:
    found = set()
    for tag in tags:
        repository, _, version = tag.lower().rpartition(":")
        if not repository or "/" in version:  # no tag, and a registry port is no tag
            repository = tag.lower()
        for name, probe in probes.items():
            if any(hint in repository for hint in probe.image_hints):
                found.add(name)
                break
    return found


def _local_engines(probes: dict[str, EngineProbe], search_path: str) -> list[str]:
    return [name for name, probe in probes.items()
            if any(all(_importable(m) for m in group) for group in probe.modules)
            or any(shutil.which(p, path=search_path) for p in probe.programs)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
