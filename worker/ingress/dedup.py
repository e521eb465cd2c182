"""Dropping repeated notifications: a key per notification, two states in Redis.

GoTo sends no notification id, so :func:`dedup_key` builds one from what
identifies a notification: its type, the call (or session) it is about and
its timestamp, as sent. A notification naming neither a call nor a session
adds a hash of its content. Two deliveries of one notification give one key
even if their JSON differs in spacing, key order or ttl spelling.

:class:`Deduplicator` keeps the key in Redis in two states:

- ``processing`` (``SET NX``, a short TTL) while the ingress enqueues it:
  a copy arriving meanwhile is dropped;
- ``done`` (a TTL of the notification's relevance window) once it is
  enqueued: later copies are dropped;
- deleted if enqueueing failed, so GoTo's retry gets through.

If the ingress dies between the two, the short ``processing`` TTL frees the
key soon.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

import redis

from worker.goto.events import Notification, UnknownNotification, notification_call_id

PREFIX = "callworker:dedup:"
PROCESSING = b"processing"
DONE = b"done"
PROCESSING_TTL = 10
MIN_WINDOW = 300


def _session_id(notification: Notification) -> str | None:
    if isinstance(notification, UnknownNotification):
        value = notification.content.get("sessionId")
        return value if isinstance(value, str) and value else None
    return notification.content.session_id or None


def dedup_key(notification: Notification) -> str:
    """The Redis key that identifies this notification among its copies."""
    timestamp = notification.timestamp
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(UTC)
    about = notification_call_id(notification) or _session_id(notification)
    parts = [notification.type, about or "", timestamp.isoformat()]
    if not about:
        content = notification.model_dump(mode="json", by_alias=True).get("content")
        parts.append(json.dumps(content, sort_keys=True, separators=(",", ":")))
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
    return PREFIX + digest


def window_seconds(notification: Notification) -> int:
    """How long a ``done`` key is kept: the notification's ttl, at least ``MIN_WINDOW``."""
    return max(int(notification.ttl), MIN_WINDOW)


class Deduplicator:
    """Two-state dedup keys on a (synchronous) Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def begin(self, key: str) -> bool:
        """Claim ``key`` for processing; False if a copy was seen already."""
        return bool(self.redis.set(key, PROCESSING, nx=True, ex=PROCESSING_TTL))

    def done(self, key: str, window: int) -> None:
        self.redis.set(key, DONE, ex=window)

    def abandon(self, key: str) -> None:
        self.redis.delete(key)
