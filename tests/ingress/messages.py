"""Reading Celery messages straight from the Redis lists the broker keeps them in."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import redis


@dataclass(frozen=True)
class Message:
    task: str
    args: list[Any]
    expires: str | None
    headers: dict[str, Any]


def queued(client: redis.Redis, queue: str) -> list[Message]:
    """Messages waiting on ``queue``, oldest first."""
    out: list[Message] = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        headers = envelope["headers"]
        out.append(Message(headers["task"], body[0], headers.get("expires"), headers))
    return out


def all_queued(client: redis.Redis) -> dict[str, int]:
    """Length of every list in the database (every queue with messages)."""
    return {
        key.decode(): client.llen(key) for key in client.scan_iter() if client.type(key) == b"list"
    }
