"""The bridge's one error tree. Every error that reaches a client has a status, a stable
machine ``code`` and a message a person can act on; handlers turn it into::

    {"error": {"code": "...", "message": "...", "details": {...}}}

    BridgeError (500 internal_error)
    ├── BadRequest (400 bad_request)
    │   ├── MalformedJSON (400 malformed_json)
    │   └── PayloadTooLarge (413 payload_too_large)
    ├── ValidationFailed (422 validation_failed)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    ├── MethodNotAllowed (405 method_not_allowed)
    ├── Conflict (409 conflict)
    │   ├── NameTaken (409 name_taken)
    │   └── InvalidState (409 invalid_state)
    ├── StorageUnavailable (503 storage_unavailable)
    ├── AgentUnavailable (503 agent_unavailable)    a node agent cannot be reached
    ├── AgentRefused (502 agent_refused)            a node agent said no
    └── NomadError (502 nomad_error)
        ├── NomadUnavailable (503 nomad_unavailable)   transient: retried, then reported
        ├── NomadRejected (422 nomad_rejected)         Nomad refused the job or request
        ├── NomadConflict (409 nomad_conflict)         check-and-set lost, or a deployment
        │                                              blocks scaling
        ├── NomadForbidden (502 nomad_forbidden)       our Nomad token lacks a capability
        └── NomadNotFound (404 nomad_not_found)
"""

from __future__ import annotations

from typing import Any, ClassVar


class BridgeError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(BridgeError):
    status = 400
    code = "bad_request"


class MalformedJSON(BadRequest):
    code = "malformed_json"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class ValidationFailed(BridgeError):
    """The body parsed but a field is unknown, of the wrong type, or out of range."""

    status = 422
    code = "validation_failed"


class Unauthorized(BridgeError):
    status = 401
    code = "unauthorized"


class Forbidden(BridgeError):
    status = 403
    code = "forbidden"


class NotFound(BridgeError):
    status = 404
    code = "not_found"


class MethodNotAllowed(BridgeError):
    status = 405
    code = "method_not_allowed"


class Conflict(BridgeError):
    status = 409
    code = "conflict"


class NameTaken(Conflict):
    code = "name_taken"


class InvalidState(Conflict):
    """The object's status does not allow the operation (an illegal transition)."""

    code = "invalid_state"


class StorageUnavailable(BridgeError):
    status = 503
    code = "storage_unavailable"


class NomadError(BridgeError):
    status = 502
    code = "nomad_error"


class NomadUnavailable(NomadError):
    status = 503
    code = "nomad_unavailable"


class NomadRejected(NomadError):
    status = 422
    code = "nomad_rejected"


class NomadConflict(NomadError):
    status = 409
    code = "nomad_conflict"


class NomadForbidden(NomadError):
    status = 502
    code = "nomad_forbidden"


class NomadNotFound(NomadError):
    status = 404
    code = "nomad_not_found"


class AgentUnavailable(BridgeError):
    status = 503
    code = "agent_unavailable"


class AgentRefused(BridgeError):
    status = 502
    code = "agent_refused"


# Raised by storage, where a constraint refused a write; here so that a caller that did
# not expect one (the api's error mapping) can name it without importing storage.
class DuplicateKey(Exception):
    """A unique constraint refused a write; ``constraint`` names it (e.g. task_groups_name_key)."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


class MissingReference(Exception):
    """A foreign key pointed at a row that does not exist."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint
