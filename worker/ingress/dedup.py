"""Dropping repeated notifications: one key per notification, set once it is handled.

GoTo sends no notification id, so :func:`dedup_key` builds one from what
identifies a notification: its type, the call (or session) it is about and
its timestamp, as sent. A notification naming neither a call nor a session
adds a hash of its content. Two deliveries of one notification give one key
even if their JSON differs in spacing, key order or ttl spelling.

The key is checked and set in the same atomic Redis script that enqueues the
notification (:data:`worker.ingress.dispatch.WRITE_SCRIPT`): it holds
``done`` for :func:`window_seconds` once the notification is on its queue,
and does not exist if enqueueing failed, so GoTo's retry gets through.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from worker.goto.events import Notification, UnknownNotification, notification_call_id

PREFIX = "callworker:dedup:"
DONE = b"done"
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
