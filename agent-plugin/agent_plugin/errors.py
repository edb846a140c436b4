"""The agent's one error tree. Each message is a reason an operator can act on; detection
errors become the per-vendor reasons in a ``DetectionReport``. Classes the agent's HTTP
API can answer with carry an HTTP ``status`` and a stable machine ``code``::

    AgentError                      500 agent_error
    ├── DetectError              a vendor's devices could not be read
    │   ├── ToolMissing          its command-line tool is not installed (or not on the path)
    │   ├── ToolFailed           the tool ran and exited non-zero
    │   ├── ToolTimedOut         the tool did not answer in time (it is killed)
    │   ├── UnparsableOutput     the tool answered something we cannot read
    │   └── LibraryUnavailable   a vendor library (NVML) could not be loaded or initialised
    ├── ModelUnreadable          a path is not a model we can describe (and why)
    ├── ExecutorError
    │   ├── UnknownTask             404 unknown_task      no task with that id is known here
    │   ├── TaskExists              409 task_exists       that id is already being run
    │   ├── InvalidTaskState        409 invalid_state     not in the task's current state
    │   └── SpawnFailed             409 spawn_failed      the engine could not be started
    ├── SleepError
    │   ├── SleepUnsupported        409 sleep_unsupported no way to sleep this engine
    │   ├── EngineRefused           409 engine_refused    the engine or Docker said no
    │   └── EngineUnreachable       502 engine_unreachable  no usable answer (Docker too)
    ├── ReportError              the bridge or Nomad did not take a report (never answered)
    ├── InvalidRequest              400 invalid_request   the API request is malformed
    └── Unauthorized                401 unauthorized      no or a wrong agent secret
"""

from __future__ import annotations


class AgentError(Exception):
    status = 500
    code = "agent_error"

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
    status = 404
    code = "unknown_task"


class TaskExists(ExecutorError):
    status = 409
    code = "task_exists"


class InvalidTaskState(ExecutorError):
    status = 409
    code = "invalid_state"


class SpawnFailed(ExecutorError):
    status = 409
    code = "spawn_failed"


class SleepError(AgentError):
    pass


class SleepUnsupported(SleepError):
    status = 409
    code = "sleep_unsupported"


class EngineRefused(SleepError):
    status = 409
    code = "engine_refused"


class EngineUnreachable(SleepError):
    status = 502
    code = "engine_unreachable"


class ReportError(AgentError):
    """``retryable``: a later attempt may succeed (outage, 5xx, auth being fixed)."""

    def __init__(self, message: str, *, retryable: bool = True,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.http_status = http_status  # the bridge's answer; None when it did not answer


class InvalidRequest(AgentError):
    status = 400
    code = "invalid_request"


class Unauthorized(AgentError):
    status = 401
    code = "unauthorized"
