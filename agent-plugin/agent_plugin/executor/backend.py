"""The seam between the executor (supervision, restarts, states) and what actually runs an
engine. ``LocalProcessBackend`` runs it as a local process group; a Docker backend would
implement the same two protocols with ``docker run`` (``--device`` for
``visibility.device_files``, ``-e`` for the env, ``-p`` for the port), ``docker wait``,
``docker kill --signal`` and ``docker pause``. None exists yet: no Docker engine is
reachable where this was built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from agent_plugin.executor.spec import TaskSpec


class RunningProcess(Protocol):
    """One started engine: a process group (or a container)."""

    @property
    def pid(self) -> int | None: ...

    async def wait(self) -> int:
        """Wait for the engine's main process to exit; its exit code (negative: signal)."""
        ...

    def terminate(self) -> None:
        """Ask everything of the engine to stop (SIGTERM to the whole group)."""
        ...

    def kill(self) -> None:
        """Stop everything of the engine now (SIGKILL to the whole group)."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    async def alive(self) -> bool:
        """Whether any process of the engine is still running (children included)."""
        ...


class ProcessBackend(Protocol):
    async def spawn(self, spec: TaskSpec, env: Mapping[str, str],
                    attempt: int) -> RunningProcess:
        """Start the engine with exactly ``env``; stdout and stderr go to ``spec.log_path``.
        Raises ``OSError`` when it cannot be started."""
        ...
