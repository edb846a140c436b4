"""What runs an allocation once the double has placed it: a small protocol and three runners.

    ManualRunner   allocations stay `pending` until the test reports a status
    AutoRunner     allocations become `running` and healthy at once
    ProcessRunner  one real local process per task, with Nomad's task environment

Every runner reports through `AllocReporter.report` (the client-update path), so what a test
sees over HTTP is what a Nomad client would have produced. Stopped allocations become
`complete` (the client kills the tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
import signal
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

Json = dict[str, Any]
CommandFor = Callable[[Json, Json], list[str] | None]
Hook = Callable[[Json, Json, "asyncio.subprocess.Process"], Awaitable[None] | None]

log = logging.getLogger(__name__)
_INTERPOLATION = re.compile(r"\$\{([^}]+)\}")


class AllocReporter(Protocol):
    """The client-update path runners report through (see client.ClientSide.report)."""

    def report(self, alloc_id: str, status: str, *, healthy: bool | None = None,
               events: list[Json | str] | None = None, exit_code: int | None = None,
               description: str | None = None) -> Json: ...

    def node(self, node_id: str) -> Json | None: ...


class Runner(Protocol):
    """Drives allocations on behalf of the (absent) Nomad clients."""

    def bind(self, reporter: AllocReporter) -> None: ...

    def start(self, alloc: Json) -> None: ...

    def stop(self, alloc: Json) -> None: ...

    async def close(self) -> None: ...


class ManualRunner:
    """Allocations stay pending; tests move them with `NomadDouble.set_alloc_status`."""

    def __init__(self) -> None:
        self.reporter: AllocReporter | None = None

    def bind(self, reporter: AllocReporter) -> None:
        self.reporter = reporter

    def start(self, alloc: Json) -> None:
        return None

    def stop(self, alloc: Json) -> None:
        assert self.reporter is not None
        self.reporter.report(alloc["ID"], "complete")

    async def close(self) -> None:
        return None


class AutoRunner(ManualRunner):
    """Allocations run and are healthy as soon as they are placed."""

    def start(self, alloc: Json) -> None:
        assert self.reporter is not None
        self.reporter.report(alloc["ID"], "running", healthy=True)


@dataclass
class _Task:
    task: Json
    process: asyncio.subprocess.Process
    waiter: asyncio.Task[None] | None = None


@dataclass
class _Alloc:
    alloc: Json
    tasks: list[_Task] = field(default_factory=list)
    stopping: bool = False
    done: bool = False


class ProcessRunner:
    """Starts `command_for(alloc, task)` as a local process per task (None = skip the task).

    The process gets Nomad's task environment: NOMAD_ALLOC_ID, NOMAD_JOB_ID, NOMAD_META_*,
    NOMAD_PORT_<label> (mapped port), NOMAD_HOST_PORT_<label> / NOMAD_HOST_IP_<label> (where a
    local process must listen to be reachable), NVIDIA_VISIBLE_DEVICES for assigned GPUs, and
    the task's `env` with `${...}` interpolated. `on_started` / `on_stopped` hooks (sync or
    async) receive (alloc, task, process); an end-to-end test registers the process in Consul
    from them.
    """

    def __init__(self, command_for: CommandFor, on_started: Hook | None = None,
                 on_stopped: Hook | None = None, *, healthy_when_started: bool = True,
                 workdir: Path | None = None, stop_timeout: float = 5.0) -> None:
        self.command_for = command_for
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.healthy_when_started = healthy_when_started
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="nomad-double-"))
        self.stop_timeout = stop_timeout
        self.reporter: AllocReporter | None = None
        self._allocs: dict[str, _Alloc] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, reporter: AllocReporter) -> None:
        self.reporter = reporter

    def start(self, alloc: Json) -> None:
        self._spawn(self._start(alloc))

    def stop(self, alloc: Json) -> None:
        entry = self._allocs.get(alloc["ID"])
        if entry is None:
            assert self.reporter is not None
            self.reporter.report(alloc["ID"], "complete")
            return
        entry.stopping = True
        self._spawn(self._stop(entry))

    async def close(self) -> None:
        for entry in list(self._allocs.values()):
            entry.stopping = True
            await self._kill(entry)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def environment(self, alloc: Json, task: Json) -> dict[str, str]:
        """Nomad's task environment (client/taskenv) for a local process."""
        job = alloc["Job"]
        group = next(g for g in job["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        node = self.reporter.node(alloc["NodeID"]) if self.reporter else None
        alloc_dir = self.workdir / alloc["ID"] / "alloc"
        task_dir = self.workdir / alloc["ID"] / task["Name"]
        env = {
            "NOMAD_ALLOC_ID": alloc["ID"], "NOMAD_ALLOC_NAME": alloc["Name"],
            "NOMAD_ALLOC_INDEX": alloc["Name"].rsplit("[", 1)[-1].rstrip("]"),
            "NOMAD_JOB_ID": job["ID"], "NOMAD_JOB_NAME": job["Name"],
            "NOMAD_GROUP_NAME": group["Name"], "NOMAD_TASK_NAME": task["Name"],
            "NOMAD_NAMESPACE": alloc["Namespace"], "NOMAD_REGION": job.get("Region") or "global",
            "NOMAD_DC": (node or {}).get("Datacenter", ""), "NOMAD_ALLOC_DIR": str(alloc_dir),
            "NOMAD_TASK_DIR": str(task_dir / "local"), "NOMAD_SECRETS_DIR": str(
                task_dir / "secrets"),
        }
        resources = alloc["AllocatedResources"]
        task_resources = resources["Tasks"].get(task["Name"]) or {}
        env["NOMAD_CPU_LIMIT"] = str(task_resources.get("Cpu", {}).get("CpuShares", 0))
        env["NOMAD_MEMORY_LIMIT"] = str(task_resources.get("Memory", {}).get("MemoryMB", 0))
        for port in resources["Shared"].get("Ports") or []:
            label, host_ip, value = port["Label"], port["HostIP"], port["Value"]
            mapped = port.get("To") or value
            env[f"NOMAD_PORT_{label}"] = str(mapped)
            env[f"NOMAD_ALLOC_PORT_{label}"] = str(mapped)
            env[f"NOMAD_HOST_PORT_{label}"] = str(value)
            env[f"NOMAD_IP_{label}"] = host_ip
            env[f"NOMAD_HOST_IP_{label}"] = host_ip
            env[f"NOMAD_ADDR_{label}"] = f"{host_ip}:{mapped}"
            env[f"NOMAD_HOST_ADDR_{label}"] = f"{host_ip}:{value}"
        meta: dict[str, str] = {}
        for source in (job.get("Meta"), group.get("Meta"), task.get("Meta")):
            meta.update(source or {})
        for key, value in meta.items():
            env[f"NOMAD_META_{key}"] = value
            env[f"NOMAD_META_{re.sub(r'[^A-Za-z0-9_]', '_', key).upper()}"] = value
        ids = [i for d in task_resources.get("Devices") or [] if d["Vendor"] == "nvidia"
               for i in d["DeviceIDs"]]
        if ids:
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(ids)
        for key, value in (task.get("Env") or {}).items():
            env[key] = _interpolate(value, env, node or {})
        return env

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, alloc: Json) -> None:
        assert self.reporter is not None
        entry = self._allocs[alloc["ID"]] = _Alloc(alloc)
        group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        try:
            for task in group.get("Tasks") or []:
                argv = self.command_for(alloc, task)
                if argv is None or entry.stopping:
                    continue
                env = self.environment(alloc, task)
                out, err = await asyncio.to_thread(_open_logs, env, task["Name"])
                try:
                    process = await asyncio.create_subprocess_exec(
                        *argv, env={**os.environ, **env}, cwd=env["NOMAD_TASK_DIR"],
                        stdout=out, stderr=err, start_new_session=True)
                finally:
                    out.close()
                    err.close()
                entry.tasks.append(_Task(task, process))
        except OSError as exc:
            log.warning("task start failed", extra={"alloc_id": alloc["ID"], "error": str(exc)})
            self.reporter.report(alloc["ID"], "failed", events=[{
                "Type": "Driver Failure", "Message": str(exc)}], exit_code=127)
            await self._kill(entry)
            return
        if entry.stopping:
            await self._kill(entry)
            return
        self.reporter.report(alloc["ID"], "running", healthy=self.healthy_when_started or None)
        for item in entry.tasks:
            await _call(self.on_started, alloc, item.task, item.process)
            item.waiter = asyncio.get_running_loop().create_task(self._wait(entry, item))
            self._tasks.add(item.waiter)
            item.waiter.add_done_callback(self._tasks.discard)

    async def _wait(self, entry: _Alloc, item: _Task) -> None:
        code = await item.process.wait()
        if entry.stopping or entry.done:
            return
        assert self.reporter is not None
        entry.done = True
        await self._kill(entry)
        status = "complete" if code == 0 else "failed"
        self.reporter.report(entry.alloc["ID"], status, exit_code=code)

    async def _stop(self, entry: _Alloc) -> None:
        await self._kill(entry)
        assert self.reporter is not None
        if not entry.done:
            entry.done = True
            self.reporter.report(entry.alloc["ID"], "complete")

    async def _kill(self, entry: _Alloc) -> None:
        for item in entry.tasks:
            process = item.process
            if process.returncode is None:
                name = item.task.get("KillSignal") or "SIGINT"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, getattr(signal, name, signal.SIGINT))
                timeout = min(self.stop_timeout, (item.task.get("KillTimeout") or 5e9) / 1e9)
                try:
                    await asyncio.wait_for(process.wait(), timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
            await _call(self.on_stopped, entry.alloc, item.task, process)
        entry.tasks.clear()
        self._allocs.pop(entry.alloc["ID"], None)


def _open_logs(env: dict[str, str], task: str) -> tuple[BinaryIO, BinaryIO]:
    """The task directory and Nomad's log files (alloc/logs/<task>.stdout.0)."""
    Path(env["NOMAD_TASK_DIR"]).mkdir(parents=True, exist_ok=True)
    logs = Path(env["NOMAD_ALLOC_DIR"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return (logs / f"{task}.stdout.0").open("ab"), (logs / f"{task}.stderr.0").open("ab")


async def _call(hook: Hook | None, alloc: Json, task: Json,
                process: asyncio.subprocess.Process) -> None:
    if hook is None:
        return
    result = hook(alloc, task, process)
    if inspect.isawaitable(result):
        await result


def _interpolate(value: str, env: dict[str, str], node: Json) -> str:
    """Nomad's task env interpolation: ${NOMAD_*}, ${attr.*}, ${meta.*}, ${node.*}."""
    simple = {"node.unique.id": "ID", "node.unique.name": "Name", "node.datacenter": "Datacenter",
              "node.class": "NodeClass", "node.pool": "NodePool"}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in env:
            return env[name]
        if name in simple:
            return str(node.get(simple[name], ""))
        for prefix, field_name in (("attr.", "Attributes"), ("meta.", "Meta")):
            if name.startswith(prefix):
                return str((node.get(field_name) or {}).get(name[len(prefix):], ""))
        return match.group(0)

    return _INTERPOLATION.sub(replace, value)
