"""GoTo notification bodies for tests, shaped like the seed document's examples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ORG = "INTEGRATOR_ORG_ID"
SESSION = "0wwAUTEn693d1amuXdfoqjIEpq7xLHJahKMzixoqg9Io"
EXTENSION = "0523"


def _ts(timestamp: datetime | None) -> str:
    return (timestamp or datetime.now(UTC)).isoformat()


def incoming(
    call_id: str, *, timestamp: datetime | None = None, ttl: Any = "30", number: str = "+5143334444"
) -> dict[str, Any]:
    return {
        "source": "WebRTC",
        "type": "incoming",
        "timestamp": _ts(timestamp),
        "usage": "VOIP",
        "ttl": ttl,
        "content": {
            "sessionId": SESSION,
            "organizationId": ORG,
            "extensionNumber": EXTENSION,
            "callId": call_id,
            "name": "Bob",
            "number": number,
        },
    }


def ended(
    call_id: str, *, timestamp: datetime | None = None, reason: str = "BYE"
) -> dict[str, Any]:
    return {
        "source": "WebRTC",
        "type": "ended",
        "timestamp": _ts(timestamp),
        "usage": "ALERT",
        "ttl": "3600",
        "content": {
            "sessionId": SESSION,
            "organizationId": ORG,
            "extensionNumber": EXTENSION,
            "callId": call_id,
            "reasonCode": reason,
        },
    }


def greetings(*, timestamp: datetime | None = None, extension: str = EXTENSION) -> dict[str, Any]:
    return {
        "source": "WebRTC",
        "type": "greetings",
        "timestamp": _ts(timestamp),
        "usage": "BACKGROUND",
        "ttl": 1800,
        "content": {"sessionId": SESSION, "organizationId": ORG, "extensionNumber": extension},
    }


def other(
    kind: str, *, call_id: str | None = None, timestamp: datetime | None = None
) -> dict[str, Any]:
    content: dict[str, Any] = {"organizationId": ORG, "extensionNumber": EXTENSION}
    if call_id is not None:
        content["callId"] = call_id
    return {
        "source": "WebRTC",
        "type": kind,
        "timestamp": _ts(timestamp),
        "usage": "ALERT",
        "ttl": "60",
        "content": content,
    }
