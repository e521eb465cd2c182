"""Injected faults: what the sandbox does wrong on purpose, and when.

A fault is added through ``POST /_sim/faults`` (see :func:`parse_fault`) and
consulted per API request (:meth:`Faults.for_request`) or per webhook delivery
(:meth:`Faults.for_notification`, :meth:`Faults.for_attempt`). Decisions are
pure functions of the fault list and the injected time; the HTTP edge and the
deliverer carry them out.

Kinds:

- ``rate-limit``: 429 with ``Retry-After`` for the next ``count`` requests, or
  at most ``perSecond`` requests in any one-second window;
- ``server-error``: ``status`` (500/502/503/504) for the next ``count``
  requests; with ``afterEffect`` the request is carried out first and only the
  reply is replaced (a lost response);
- ``latency``: ``seconds`` added before the request is handled (or, with
  ``afterEffect``, after it was handled and before the reply is sent);
- ``webhook``: the next ``count`` deliveries fail with ``status`` (the
  receiver is not contacted), are dropped (``drop``) or sent twice
  (``duplicate``).

Request faults may be narrowed by ``method`` and ``path`` (a path prefix).
Without ``count`` a fault lasts until it is cleared.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from gotosim.errors import (
    INVALID,
    REQUIRED,
    TOO_MANY_REQUESTS,
    UNAVAILABLE,
    UNKNOWN_ERROR,
    ApiError,
)
from gotosim.validate import Fields

FaultKind = Literal["rate-limit", "server-error", "latency", "webhook"]
KINDS: tuple[FaultKind, ...] = ("rate-limit", "server-error", "latency", "webhook")
SERVER_ERROR_STATUSES = (500, 502, 503, 504)


@dataclass
class Fault:
    id: str
    kind: FaultKind
    remaining: int | None = None
    method: str | None = None
    path: str | None = None
    status: int = 0
    retry_after: int = 1
    per_second: int | None = None
    seconds: float = 0.0
    after_effect: bool = False
    mode: Literal["status", "drop", "duplicate"] = "status"
    channel_id: str | None = None
    applied: int = 0
    window: deque[float] = field(default_factory=deque)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.kind, "applied": self.applied}
        if self.remaining is not None:
            out["remaining"] = self.remaining
        for key, value in (
            ("method", self.method),
            ("path", self.path),
            ("channelId", self.channel_id),
            ("perSecond", self.per_second),
        ):
            if value is not None:
                out[key] = value
        if self.kind == "rate-limit":
            out["retryAfter"] = self.retry_after
        if self.kind == "server-error" or (self.kind == "webhook" and self.mode == "status"):
            out["status"] = self.status
        if self.kind == "latency":
            out["seconds"] = self.seconds
        if self.kind in ("server-error", "latency"):
            out["afterEffect"] = self.after_effect
        if self.kind == "webhook" and self.mode != "status":
            out[self.mode] = True
        return out

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or path.startswith(self.path)


def parse_fault(data: dict[str, Any]) -> Fault:
    """Validate a ``POST /_sim/faults`` body into a :class:`Fault`."""
    fields = Fields(data)
    kind = fields.string("type", required=True, choices=KINDS)
    count = fields.integer("count", minimum=1, maximum=1_000_000)
    method = fields.string("method", pattern=r"[A-Za-z]{1,10}")
    path = fields.string("path", pattern=r"/\S*", max_length=1000)
    fault = Fault(
        id=str(uuid.uuid4()),
        kind=cast(FaultKind, kind or "latency"),
        remaining=count,
        method=method.upper() if method else None,
        path=path,
    )
    if kind == "rate-limit":
        fault.retry_after = fields.integer("retryAfter", minimum=0, maximum=3600) or 1
        fault.per_second = fields.integer("perSecond", minimum=1, maximum=100_000)
        fault.status = 429
        if fault.per_second is not None and count is not None:
            fields.invalid("perSecond")
    elif kind == "server-error":
        status = fields.integer("status", minimum=500, maximum=599)
        fault.status = status or 503
        fault.after_effect = bool(fields.boolean("afterEffect"))
    elif kind == "latency":
        seconds = fields.number("seconds", required=True, minimum=0.0, maximum=120.0)
        fault.seconds = seconds or 0.0
        fault.after_effect = bool(fields.boolean("afterEffect"))
    elif kind == "webhook":
        drop = bool(fields.boolean("drop"))
        duplicate = bool(fields.boolean("duplicate"))
        status = fields.integer("status", minimum=100, maximum=599)
        fault.channel_id = fields.string("channelId", max_length=200)
        chosen = [
            name for name, on in (("status", status), ("drop", drop), ("dup", duplicate)) if on
        ]
        if len(chosen) != 1:
            fields.add("status", REQUIRED if not chosen else INVALID)
        fault.mode = "drop" if drop else "duplicate" if duplicate else "status"
        fault.status = status or 0
    fields.check()
    return fault


@dataclass(frozen=True)
class RequestFaults:
    """What to do to one API request."""

    delay_before: float = 0.0
    delay_after: float = 0.0
    error: ApiError | None = None
    error_after: ApiError | None = None
    applied: tuple[str, ...] = ()


class Faults:
    """The active faults, consumed as they apply."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def list(self) -> list[Fault]:
        return list(self._faults)

    def remove(self, fault_id: str) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> None:
        self._faults.clear()

    def _consume(self, fault: Fault) -> None:
        fault.applied += 1
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)

    def for_request(self, method: str, path: str, now: float) -> RequestFaults:
        """Decide the faults for one API request at time ``now``."""
        before = after = 0.0
        error: ApiError | None = None
        error_after: ApiError | None = None
        applied: list[str] = []
        for fault in list(self._faults):
            if fault.kind == "webhook" or not fault.matches(method, path):
                continue
            if fault.kind == "latency":
                if fault.after_effect:
                    after += fault.seconds
                else:
                    before += fault.seconds
                applied.append(f"latency {fault.seconds}s")
                self._consume(fault)
            elif fault.kind == "rate-limit" and error is None:
                limited = self._rate_limited(fault, now)
                if limited is not None:
                    error = limited
                    applied.append("rate-limit")
            elif fault.kind == "server-error" and error is None and error_after is None:
                failure = _server_error(fault.status)
                if fault.after_effect:
                    error_after = failure
                else:
                    error = failure
                applied.append(f"server-error {fault.status}")
                self._consume(fault)
        return RequestFaults(before, after, error, error_after, tuple(applied))

    def _rate_limited(self, fault: Fault, now: float) -> ApiError | None:
        if fault.per_second is None:
            self._consume(fault)
            return _too_many(fault.retry_after, "the sandbox is injecting 429s")
        while fault.window and fault.window[0] <= now - 1.0:
            fault.window.popleft()
        if len(fault.window) < fault.per_second:
            fault.window.append(now)
            return None
        fault.applied += 1
        wait = max(1, math.ceil(fault.window[0] + 1.0 - now))
        return _too_many(wait, f"more than {fault.per_second} requests per second")

    def for_notification(self, channel_id: str) -> Literal["drop", "duplicate"] | None:
        """Whether to drop or duplicate one notification (consumes the fault)."""
        for fault in list(self._faults):
            if fault.kind != "webhook" or fault.mode == "status":
                continue
            if fault.channel_id is not None and fault.channel_id != channel_id:
                continue
            self._consume(fault)
            return "drop" if fault.mode == "drop" else "duplicate"
        return None

    def for_attempt(self, channel_id: str) -> int | None:
        """A status to pretend the receiver answered for one delivery attempt, if any."""
        for fault in list(self._faults):
            if fault.kind != "webhook" or fault.mode != "status":
                continue
            if fault.channel_id is not None and fault.channel_id != channel_id:
                continue
            self._consume(fault)
            return fault.status
        return None


def _too_many(retry_after: int, why: str) -> ApiError:
    return ApiError(
        429,
        TOO_MANY_REQUESTS,
        f"request limit reached ({why}); retry after {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def _server_error(status: int) -> ApiError:
    code = UNAVAILABLE if status == 503 else UNKNOWN_ERROR
    return ApiError(status, code, f"injected server error {status}")
