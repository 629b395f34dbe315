"""The one error hierarchy of maas. Each error's `code` decides its status on every transport."""

from __future__ import annotations

import enum
from typing import ClassVar


class ErrorCode(enum.Enum):
    """Transport-neutral error classes; REST and gRPC each map these in one table."""

    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


class MaasError(Exception):
    """A failure we expect and can explain. `code` decides the status on every transport."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL


class InvalidInput(MaasError):
    """A request, file or argument that is malformed; the message says what to change."""

    code = ErrorCode.INVALID_ARGUMENT


class SpecError(InvalidInput):
    """A training spec with an unknown key, a wrong type or an impossible value."""


class DataError(InvalidInput):
    """A dataset file that cannot be read as the spec asks (names the file and the problem)."""


class ShapeMismatch(InvalidInput):
    """A tensor whose shape or datatype does not match the model's signature."""


class ValidationFailed(MaasError):
    """An exported model failed a check (graph, parity, accuracy) and may not be registered."""

    code = ErrorCode.INVALID_ARGUMENT


class NotFound(MaasError):
    """An unknown model, version, alias or file."""

    code = ErrorCode.NOT_FOUND


class ModelNotFound(NotFound):
    """No model or version answers to the requested name or reference."""


class Conflict(MaasError):
    """The action contradicts the current state (a version exists, an alias points at it)."""

    code = ErrorCode.CONFLICT


class PayloadTooLarge(MaasError):
    """A request body over the configured limit."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class ResponseTooLarge(MaasError):
    """An answer that would be over the server's response size limit; it is refused before it
    is built (413 / RESOURCE_EXHAUSTED: the client can ask for fewer rows, outputs or classes)."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class Unauthenticated(MaasError):
    """Missing or invalid credentials."""

    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(MaasError):
    """Valid credentials without the scope the action needs."""

    code = ErrorCode.PERMISSION_DENIED


class ResourceExhausted(MaasError):
    """A rate limit was hit; retry later.

    Attributes:
        retry_after_s: how long to wait before the next try (None: unknown); the front ends send
            it as `Retry-After`.
    """

    code = ErrorCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(MaasError):
    """The server cannot take the request now (queue full, model loading)."""

    code = ErrorCode.UNAVAILABLE


class DeadlineExceeded(MaasError):
    """The request's deadline passed before it could be answered."""

    code = ErrorCode.DEADLINE_EXCEEDED


class IntegrityError(MaasError):
    """Stored bytes whose digest does not match what the registry recorded."""

    code = ErrorCode.INTERNAL


class EncryptionError(MaasError):
    """Stored bytes that cannot be decrypted with the configured key (missing or another key)."""

    code = ErrorCode.INTERNAL


class ResumeError(MaasError):
    """A checkpoint that cannot be resumed (missing, or made from another spec)."""

    code = ErrorCode.INVALID_ARGUMENT
