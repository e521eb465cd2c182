"""The exception tree and the pure retry decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.goto import errors
from worker.goto.client import Outcome, RetryPolicy, backoff, retry_delay


def body(code: str, **extra: object) -> dict[str, object]:
    return {"reference": "ref-42", "errorCode": code, "message": "It went wrong", **extra}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "BAD_REQUEST", errors.BadRequestError),
        (422, "MALFORMED_REQUEST", errors.BadRequestError),
        (401, "AUTHN_INVALID_TOKEN", errors.AuthError),
        (403, "UNAUTHORIZED", errors.AuthError),
        (403, "AUTHZ_INSUFFICIENT_SCOPE", errors.InsufficientScopeError),
        (404, "NOT_FOUND", errors.NotFoundError),
        (409, "CONFLICT", errors.ConflictError),
        (429, "TOO_MANY_REQUESTS", errors.RateLimitedError),
        (500, "UNKNOWN_ERROR", errors.ServerError),
        (503, "UNAVAILABLE", errors.ServerError),
        (406, "NOT_ACCEPTABLE", errors.GoToError),
    ],
)
def test_status_and_code_choose_the_class(
    status: int, code: str, cls: type[errors.GoToError]
) -> None:
    exc = errors.error_from_reply(status, body(code), method="GET", path="/web-calls/v1/devices/7")
    assert type(exc) is cls
    assert (exc.status, exc.error_code, exc.reference) == (status, code, "ref-42")
    assert (exc.method, exc.path) == ("GET", "/web-calls/v1/devices/7")
    assert str(exc).startswith(f"GET /web-calls/v1/devices/7 failed: HTTP {status} {code}")
    assert "(reference ref-42)" in str(exc)
    assert "It went wrong" in str(exc)
    assert isinstance(exc, errors.GoToError)


def test_insufficient_scope_is_an_auth_error_and_names_the_scopes() -> None:
    exc = errors.error_from_reply(
        403, body("AUTHZ_INSUFFICIENT_SCOPE"), method="POST", path="/web-calls/v1/calls"
    )
    assert isinstance(exc, errors.AuthError)
    assert "webrtc.v1.write" in str(exc)


@pytest.mark.parametrize("key", ["constraintViolations", "constraints"])
def test_bad_request_reads_both_constraint_arrays(key: str) -> None:
    reply = body(
        "BAD_REQUEST",
        **{
            key: [
                {"field": "dialString", "constraint": "REQUIRED"},
                {"field": "sdp", "constraint": "INVALID", "message": "not an SDP"},
            ]
        },
    )
    exc = errors.error_from_reply(400, reply, method="POST", path="/web-calls/v1/calls")
    assert isinstance(exc, errors.BadRequestError)
    assert exc.constraint_violations == (
        errors.ConstraintViolation("dialString", "REQUIRED"),
        errors.ConstraintViolation("sdp", "INVALID", "not an SDP"),
    )
    assert "constraint violations: dialString REQUIRED, sdp INVALID (not an SDP)" in str(exc)
    assert "fix the request fields" in str(exc)


def test_reply_without_goto_body_still_makes_a_clear_error() -> None:
    exc = errors.error_from_reply(502, "<html>bad gateway</html>", method="GET", path="/x")
    assert isinstance(exc, errors.ServerError)
    assert (exc.error_code, exc.reference) == ("", "")
    assert str(exc).startswith("GET /x failed: HTTP 502; GoTo is failing")


def test_rate_limited_carries_retry_after() -> None:
    exc = errors.error_from_reply(
        429, body("TOO_MANY"), method="GET", path="/x", retry_after=12.0, attempts=3
    )
    assert isinstance(exc, errors.RateLimitedError)
    assert exc.retry_after == 12.0
    assert "retry after 12 s" in str(exc)
    assert "gave up after 3 attempts" in str(exc)


def test_secrets_are_scrubbed_from_goto_text() -> None:
    reply = body(
        "AUTHN_INVALID_TOKEN",
        message="token ACCESS-SECRET-1234 is bad",
        constraintViolations=[{"field": "ACCESS-SECRET-1234", "constraint": "INVALID"}],
    )
    exc = errors.error_from_reply(
        401, reply, method="GET", path="/x", secrets=("ACCESS-SECRET-1234",)
    )
    assert "ACCESS-SECRET-1234" not in str(exc)
    assert "token ******** is bad" in str(exc)
    assert "ACCESS-SECRET-1234" not in repr(exc)


NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("Thu, 02 Jan 2025 03:04:25 GMT", 20.0),
        ("Thu, 02 Jan 2025 03:00:00 GMT", 0.0),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert errors.parse_retry_after(header, NOW) == seconds


POLICY = RetryPolicy(max_attempts=4, max_elapsed=30.0, base_delay=0.5, max_delay=8.0)


def decide(outcome: Outcome, *, safe: bool, attempt: int = 1, elapsed: float = 0.0) -> float | None:
    return retry_delay(POLICY, outcome, attempt=attempt, safe=safe, elapsed=elapsed, rand=1.0)


@pytest.mark.parametrize("safe", [True, False])
def test_never_sent_and_429_are_retried_for_every_request(safe: bool) -> None:
    assert decide(Outcome(None, sent=False), safe=safe) == 0.5
    assert decide(Outcome(429, sent=True), safe=safe) == 0.5
    assert decide(Outcome(429, sent=True, retry_after=3.0), safe=safe) == 3.0


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504])
def test_unsafe_request_that_may_have_taken_effect_is_never_retried(status: int | None) -> None:
    outcome = Outcome(status, sent=True)
    assert outcome.ambiguous
    assert decide(outcome, safe=False) is None


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (None, True),
        (502, True),
        (503, True),
        (504, True),
        (500, False),
        (400, False),
        (401, False),
        (404, False),
        (409, False),
    ],
)
def test_safe_request_retries_only_transient_failures(status: int | None, retried: bool) -> None:
    assert (decide(Outcome(status, sent=True), safe=True) is not None) is retried


def test_attempts_and_total_time_are_bounded() -> None:
    outcome = Outcome(503, sent=True)
    assert decide(outcome, safe=True, attempt=3) is not None
    assert decide(outcome, safe=True, attempt=4) is None
    assert decide(Outcome(429, sent=True, retry_after=25.0), safe=True, elapsed=4.0) == 25.0
    assert decide(Outcome(429, sent=True, retry_after=25.0), safe=True, elapsed=6.0) is None


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    assert [backoff(POLICY, n, 1.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert [backoff(POLICY, n, 0.0) for n in range(1, 4)] == [0.25, 0.5, 1.0]
