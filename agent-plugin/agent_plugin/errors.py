"""The agent's one error tree. Each message is a reason an operator can act on; detection
errors become the per-vendor reasons in a ``DetectionReport``::

    AgentError
    ├── DetectError              a vendor's devices could not be read
    │   ├── ToolMissing          its command-line tool is not installed (or not on the path)
    │   ├── ToolFailed           the tool ran and exited non-zero
    │   ├── ToolTimedOut         the tool did not answer in time (it is killed)
    │   ├── UnparsableOutput     the tool answered something we cannot read
    │   └── LibraryUnavailable   a vendor library (NVML) could not be loaded or initialised
    ├── ModelUnreadable          a path is not a model we can describe (and why)
    └── ExecutorError
        ├── UnknownTask          no task with that id is known to the executor
        ├── TaskExists           a task with that id is already being run
        ├── InvalidTaskState     the operation does not apply in the task's state
        └── SpawnFailed          the engine could not be started (its port is taken, ...)
"""

from __future__ import annotations


class AgentError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DetectError(AgentError):
    pass


class ToolMissing(DetectError):
    pass


class ToolFailed(DetectError):
    pass


class ToolTimedOut(DetectError):
    pass


class UnparsableOutput(DetectError):
    pass


class LibraryUnavailable(DetectError):
    pass


class ModelUnreadable(AgentError):
    pass


class ExecutorError(AgentError):
    pass


class UnknownTask(ExecutorError):
    pass


class TaskExists(ExecutorError):
    pass


class InvalidTaskState(ExecutorError):
    pass


class SpawnFailed(ExecutorError):
    pass
