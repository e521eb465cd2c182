"""The log of every API request the sandbox received, for ``GET /_sim/requests``.

Bodies are kept as JSON when they parse (text otherwise, cut at 64 KiB).
Credentials are redacted before anything is stored: the ``Authorization``
header keeps only its scheme, and OAuth form fields and token replies lose
their secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from gotosim.clock import iso_offset

MAX_RECORDS = 10_000
MAX_BODY = 65_536
REDACTED = "***"
_SECRET_FIELDS = frozenset(
    {"client_secret", "refresh_token", "access_token", "code", "code_verifier", "password"}
)


@dataclass
class RequestRecord:
    id: int
    time: float
    method: str
    path: str
    query: str
    authorization: str | None
    body: Any
    status: int = 0
    response: Any = None
    duration_ms: float = 0.0
    faults: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "time": iso_offset(self.time),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "durationMs": self.duration_ms,
        }
        if self.query:
            out["query"] = self.query
        if self.authorization is not None:
            out["authorization"] = self.authorization
        if self.body is not None:
            out["body"] = self.body
        if self.response is not None:
            out["response"] = self.response
        if self.faults:
            out["faults"] = list(self.faults)
        return out


def redact_authorization(value: str | None) -> str | None:
    if value is None:
        return None
    scheme = value.strip().partition(" ")[0]
    return f"{scheme[:20]} {REDACTED}" if scheme else REDACTED


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k in _SECRET_FIELDS else _redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def decode_body(raw: bytes, content_type: str) -> Any:
    """A request or reply body as stored: JSON, a redacted form, or text."""
    if not raw:
        return None
    if "x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: (REDACTED if k in _SECRET_FIELDS else v) for k, v in pairs}
    try:
        return _redact_json(json.loads(raw))
    except (ValueError, RecursionError):
        text = raw[:MAX_BODY].decode("utf-8", "replace")
        return text if len(raw) <= MAX_BODY else text + "…"


class RequestLog:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self._next = 1

    def start(
        self,
        time: float,
        method: str,
        path: str,
        query: str,
        authorization: str | None,
        body: bytes,
        content_type: str,
    ) -> RequestRecord:
        record = RequestRecord(
            id=self._next,
            time=time,
            method=method,
            path=path,
            query=query,
            authorization=redact_authorization(authorization),
            body=decode_body(body[: MAX_BODY + 1], content_type),
        )
        self._next += 1
        self.records.append(record)
        if len(self.records) > MAX_RECORDS:
            del self.records[: len(self.records) - MAX_RECORDS]
        return record

    def clear(self) -> None:
        self.records.clear()
