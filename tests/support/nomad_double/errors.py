"""The one error type of the double: an HTTP status plus Nomad's plain-text message.

    ApiError(400, "Job ID hasn't been provided")   -> 400, text/plain body
    ApiError(500, "Enforcing job modify index 3: job exists with conflicting job modify index: 7")
"""

from __future__ import annotations


class ApiError(Exception):
    """An error Nomad would answer with `status` and the plain-text body `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
