"""The executor: runs an engine as a local process group (Docker would plug in behind
``backend.ProcessBackend``), supervises it and reports its state changes."""

from agent_plugin.executor.backend import ProcessBackend, RunningProcess
from agent_plugin.executor.executor import Executor, StateListener
from agent_plugin.executor.record import TaskHandle
from agent_plugin.executor.spec import (
    RestartMode,
    RestartPolicy,
    StateChange,
    TaskSpec,
    TaskState,
    TaskStatus,
)

__all__ = ["Executor", "ProcessBackend", "RestartMode", "RestartPolicy", "RunningProcess",
           "StateChange", "StateListener", "TaskHandle", "TaskSpec", "TaskState", "TaskStatus"]
