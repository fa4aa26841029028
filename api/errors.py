"""Domain errors: what services raise. ``api.handlers`` turns them into the JSON error body.

Services never raise FastAPI exceptions; each error here carries a stable
:class:`~campsync_sync.ErrorCode`, whose HTTP status is in ``campsync_sync.ERROR_STATUS``.
"""

from __future__ import annotations

from campsync_sync import ErrorCode
from pydantic import JsonValue


class DomainError(Exception):
    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(
        self,
        message: str,
        details: JsonValue = None,
        *,
        code: ErrorCode | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers
        if code is not None:
            self.code = code


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Unauthenticated(DomainError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class AlreadyExists(DomainError):
    code = ErrorCode.ALREADY_EXISTS


class InvalidInput(DomainError):
    code = ErrorCode.VALIDATION_ERROR


class ConflictError(DomainError):
    code = ErrorCode.CONFLICT
