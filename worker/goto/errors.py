"""The one exception tree of the GoTo client.

Every failure of a GoTo request (OAuth token endpoint included) is raised as
one of these::

    GoToError                       status, error_code, reference, method, path
    ├── AuthError                   401 / 403, or a refused OAuth grant
    │   └── InsufficientScopeError  403 AUTHZ_INSUFFICIENT_SCOPE
    ├── NotFoundError               404
    ├── ConflictError               409
    ├── BadRequestError             400 / 422, with .constraint_violations
    ├── RateLimitedError            429, with .retry_after (seconds or None)
    ├── ServerError                 5xx on a request that is safe to repeat
    ├── ProtocolError               a reply this client cannot read
    ├── TransportError              no HTTP reply: connection refused, timeout
    └── AmbiguousResultError        a request that is not safe to repeat was sent
                                    and no definitive reply came back: it may
                                    have taken effect

Each error carries the HTTP ``status`` (``None`` when there was no reply),
GoTo's ``error_code`` and ``reference``, and the request's ``method`` and
``path`` (no host, no query). Messages say what happened, where, and what to
do next. They never contain tokens, client secrets or Authorization headers:
:func:`scrub` removes known secret values from any text GoTo sends back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True)
class ConstraintViolation:
    """One entry of GoTo's ``constraintViolations`` (or ``constraints``) array."""

    field: str
    constraint: str
    message: str = ""

    def __str__(self) -> str:
        text = f"{self.field or '?'} {self.constraint or 'invalid'}"
        return f"{text} ({self.message})" if self.message else text


class GoToError(Exception):
    """A GoTo request failed. Base of every error the client raises."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str = "",
        reference: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.reference = reference
        self.method = method
        self.path = path
        super().__init__(message)

    @property
    def request(self) -> str:
        """``METHOD /path`` of the failed request, or ``""``."""
        return f"{self.method} {self.path}".strip()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_code={self.error_code!r}, "
            f"reference={self.reference!r}, request={self.request!r})"
        )


class AuthError(GoToError):
    """Not authenticated (401) or not allowed (403), or the OAuth server refused a grant."""

    hint = (
        "check CALLWORKER_CLIENT_ID, CALLWORKER_CLIENT_SECRET and CALLWORKER_REFRESH_TOKEN; "
        "a refresh token expires after about 30 days and must then be obtained again"
    )


class InsufficientScopeError(AuthError):
    """403 ``AUTHZ_INSUFFICIENT_SCOPE``: the token lacks a scope this request needs."""

    hint = (
        "authorize the OAuth client with the scopes webrtc.v1.read, webrtc.v1.write, "
        "notification-channel.v1.read and notification-channel.v1.manage, then get a new "
        "refresh token"
    )


class NotFoundError(GoToError):
    """404: the resource does not exist or is not visible to this user."""

    hint = "check the id; the resource may have been deleted or belong to another user"


class ConflictError(GoToError):
    """409: the resource already exists or is in a state that forbids the request."""

    hint = "the resource already exists or is in a conflicting state; read it before retrying"


class BadRequestError(GoToError):
    """400/422: GoTo refused the request's content; see :attr:`constraint_violations`."""

    hint = "fix the request fields named above"

    def __init__(
        self,
        message: str,
        *,
        constraint_violations: Iterable[ConstraintViolation] = (),
        **context: Any,
    ) -> None:
        self.constraint_violations = tuple(constraint_violations)
        super().__init__(message, **context)


class RateLimitedError(GoToError):
    """429: too many requests; :attr:`retry_after` is GoTo's advice in seconds, if any."""

    hint = "slow down"

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **context)


class ServerError(GoToError):
    """5xx from GoTo on a request that is safe to repeat (retries are exhausted)."""

    hint = "GoTo is failing; try again later and quote the reference to GoTo support if it lasts"


class ProtocolError(GoToError):
    """GoTo replied with a body this client cannot read."""

    hint = "the API may have changed; report this with the reference"


class TransportError(GoToError):
    """No HTTP reply: the connection failed or timed out.

    ``sent`` is False when the request certainly never reached the server
    (connection refused, connect timeout), so repeating it is always safe.
    """

    hint = "check the API URL (CALLWORKER_GOTO_API_URL / CALLWORKER_GOTO_AUTH_URL) and the network"

    def __init__(self, message: str, *, sent: bool = False, **context: Any) -> None:
        self.sent = sent
        super().__init__(message, **context)


class AmbiguousResultError(GoToError):
    """A request that must not be repeated was sent, and no definitive reply came back.

    It may have taken effect (a call placed, answered, transferred...). The
    client never retries it; :attr:`check` says what the caller should look at
    before trying again. ``status`` is the 5xx status if GoTo answered with
    one, or ``None`` after a timeout or a dropped connection.
    """

    def __init__(self, message: str, *, check: str, **context: Any) -> None:
        self.check = check
        super().__init__(message, **context)


# --- building errors from replies -------------------------------------------------------


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret value replaced by ``********``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "********")
    return text


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None or now.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _violations(body: Mapping[str, Any]) -> tuple[ConstraintViolation, ...]:
    found: list[ConstraintViolation] = []
    for key in ("constraintViolations", "constraints"):
        items = body.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping):
                found.append(
                    ConstraintViolation(
                        field=str(item.get("field", "") or ""),
                        constraint=str(item.get("constraint", "") or ""),
                        message=str(item.get("message", "") or ""),
                    )
                )
            elif isinstance(item, str):
                found.append(ConstraintViolation(field="", constraint=item))
    return tuple(found)


def _status_class(status: int, error_code: str) -> type[GoToError]:
    if status == 403 and error_code == "AUTHZ_INSUFFICIENT_SCOPE":
        return InsufficientScopeError
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status in (400, 422):
        return BadRequestError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    return GoToError


def error_from_reply(
    status: int,
    body: Any,
    *,
    method: str,
    path: str,
    secrets: Iterable[str] = (),
    retry_after: float | None = None,
    attempts: int = 1,
) -> GoToError:
    """The typed error for an HTTP error reply with GoTo's error body (or none)."""
    body = body if isinstance(body, Mapping) else {}
    error_code = str(body.get("errorCode", "") or "")
    reference = str(body.get("reference", "") or "")
    goto_message = scrub(str(body.get("message", "") or ""), secrets)
    cls = _status_class(status, error_code)
    violations = _violations(body)
    parts = [f"{method} {path} failed: HTTP {status}"]
    if error_code:
        parts.append(f" {error_code}")
    if reference:
        parts.append(f" (reference {reference})")
    if goto_message:
        parts.append(f": {goto_message}")
    if violations:
        listed = ", ".join(scrub(str(v), secrets) for v in violations)
        parts.append(f"; constraint violations: {listed}")
    if attempts > 1:
        parts.append(f"; gave up after {attempts} attempts")
    if cls is RateLimitedError:
        advice = f"retry after {retry_after:g} s" if retry_after is not None else "retry later"
        parts.append(f"; {advice}")
    elif cls.hint:
        parts.append(f"; {cls.hint}")
    message = "".join(parts)
    context: dict[str, Any] = {
        "status": status,
        "error_code": error_code,
        "reference": reference,
        "method": method,
        "path": path,
    }
    if cls is BadRequestError:
        return BadRequestError(message, constraint_violations=violations, **context)
    if cls is RateLimitedError:
        return RateLimitedError(message, retry_after=retry_after, **context)
    return cls(message, **context)


__all__ = [
    "AmbiguousResultError",
    "AuthError",
    "BadRequestError",
    "ConflictError",
    "ConstraintViolation",
    "GoToError",
    "InsufficientScopeError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "ServerError",
    "TransportError",
    "error_from_reply",
    "parse_retry_after",
    "scrub",
]
