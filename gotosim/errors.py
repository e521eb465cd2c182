"""GoTo-shaped errors raised anywhere in gotosim and rendered as GoTo error bodies.

One exception type, :class:`ApiError`, carries the HTTP status, GoTo's
``errorCode``, a message a person can act on, and the ``constraintViolations``
of a 400. :class:`OAuthError` is the token endpoint's RFC 6749 error, which has
its own body shape. Messages never contain tokens, secrets or webhook paths.

    Exception
     +-- ApiError    {"reference", "errorCode", "message", "constraintViolations"?}
     +-- OAuthError  {"error", "error_description"}
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BAD_REQUEST = "BAD_REQUEST"
MALFORMED_REQUEST = "MALFORMED_REQUEST"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
UNAUTHORIZED = "UNAUTHORIZED"
AUTHN_INVALID_TOKEN = "AUTHN_INVALID_TOKEN"  # noqa: S105 (an error code)
AUTHN_EXPIRED_TOKEN = "AUTHN_EXPIRED_TOKEN"  # noqa: S105
AUTHN_MALFORMED_TOKEN = "AUTHN_MALFORMED_TOKEN"  # noqa: S105
AUTHN_UNSUPPORTED_SCHEME = "AUTHN_UNSUPPORTED_SCHEME"
AUTHZ_INSUFFICIENT_SCOPE = "AUTHZ_INSUFFICIENT_SCOPE"
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
UNKNOWN_ERROR = "UNKNOWN_ERROR"
UNAVAILABLE = "UNAVAILABLE"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
TIMEOUT = "TIMEOUT"

REQUIRED = "REQUIRED"
INVALID = "INVALID"


@dataclass(frozen=True)
class Violation:
    """One bad field of a request: ``field`` is a dotted path, ``constraint`` REQUIRED/INVALID."""

    field: str
    constraint: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "constraint": self.constraint}


class ApiError(Exception):
    """An API failure that becomes a GoTo error body."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        violations: Sequence[Violation] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.message = message
        self.violations = tuple(violations)
        self.headers = dict(headers or {})
        super().__init__(f"{status} {error_code}: {message}")

    def body(self) -> dict[str, Any]:
        return error_body(self.error_code, self.message, self.violations)


class OAuthError(Exception):
    """A token endpoint failure (RFC 6749 section 5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"{status} {error}: {description}")

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def error_body(
    error_code: str, message: str, violations: Sequence[Violation] = ()
) -> dict[str, Any]:
    """GoTo's error body; ``constraintViolations`` is left out when empty (nulls are omitted)."""
    body: dict[str, Any] = {
        "reference": str(uuid.uuid4()),
        "errorCode": error_code,
        "message": message,
    }
    if violations:
        body["constraintViolations"] = [v.as_json() for v in violations]
    return body


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, NOT_FOUND, f"{what} {ident!r} was not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, CONFLICT, message)


def bad_field(field: str, constraint: str, message: str) -> ApiError:
    return ApiError(400, BAD_REQUEST, message, [Violation(field, constraint)])
