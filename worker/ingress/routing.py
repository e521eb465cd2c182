"""Where a notification goes: pure decisions of (notification, now, owner).

:func:`classify` looks at a parsed notification and the time and says one of:

- :class:`Drop`: acknowledge and do nothing (stale, unknown source, an
  unknown type that names no call), with the reason to log;
- :class:`RecordGreetings`: note that an extension's registration was
  greeted (the provisioning command polls for it);
- :class:`Enqueue`: a task for the shared ``calls`` queue (``incoming``);
- :class:`FollowUp`: an event of a call, whose destination depends on which
  node owns the call; :func:`route_follow_up` finishes the decision once the
  owner is known.

Expiry: ``incoming`` expires ``INCOMING_MARGIN`` s before its ttl runs out
(ttl 30 s, sent just now: about 25 s), so a backlog or a redelivery never
answers a call GoTo has given up on. Events for an owning node expire within
``EVENT_EXPIRES`` s; an ``ended`` for a call no node owns goes to the shared
queue so the store is updated, expiring with its ttl (at most an hour).

A ttl of 0 (absent) means the notification does not say how long it is
relevant: it is never stale, and ``incoming`` assumes GoTo's 30 s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from celery.utils.nodenames import worker_direct

from worker.goto.events import (
    EndedNotification,
    GreetingsNotification,
    IncomingNotification,
    Notification,
    UnknownNotification,
)

SOURCE = "WebRTC"
CALLS_QUEUE = "calls"
ON_INCOMING = "tasks.calls.on_incoming"
ON_CALL_EVENT = "tasks.calls.on_call_event"

DEFAULT_INCOMING_TTL = 30.0
INCOMING_MARGIN = 5.0
MIN_EXPIRES = 1.0
EVENT_EXPIRES = 60.0
UNOWNED_EVENT_EXPIRES = 3600.0
GREETINGS_KEEP = 3600


@dataclass(frozen=True)
class Drop:
    reason: str
    level: int = logging.INFO


@dataclass(frozen=True)
class Enqueue:
    """Send ``task`` with the notification to ``queue``; ``node`` set: that node's own queue."""

    task: str
    queue: str
    expires: float
    node: str | None = None


@dataclass(frozen=True)
class RecordGreetings:
    organization_id: str
    extension_number: str
    timestamp: str
    keep_seconds: int


@dataclass(frozen=True)
class FollowUp:
    """An event of ``call_id``: to its owner if it has one, else ``unowned``."""

    call_id: str
    task: str
    expires: float
    unowned: Enqueue | Drop


Decision = Drop | Enqueue | RecordGreetings | FollowUp


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def age_seconds(notification: Notification, now: datetime) -> float:
    """How long ago the notification was sent (negative if its clock is ahead of ours)."""
    return (now - _aware(notification.timestamp)).total_seconds()


def remaining_seconds(notification: Notification, now: datetime, default_ttl: float) -> float:
    """Seconds until the notification's ttl (or ``default_ttl`` if it has none) runs out."""
    ttl = float(notification.ttl) if notification.ttl > 0 else default_ttl
    return ttl - age_seconds(notification, now)


def classify(notification: Notification, now: datetime) -> Decision:
    """The first routing decision for a parsed notification at time ``now``."""
    if notification.source != SOURCE:
        return Drop(f"source {notification.source!r} is not {SOURCE!r}; acknowledged and ignored")
    kind = notification.type
    if notification.ttl > 0 and remaining_seconds(notification, now, 0.0) < 0:
        age = age_seconds(notification, now)
        return Drop(
            f"stale {kind} notification: sent {age:.1f} s ago, ttl {notification.ttl} s; dropped"
        )
    if isinstance(notification, GreetingsNotification):
        content = notification.content
        return RecordGreetings(
            organization_id=content.organization_id,
            extension_number=content.extension_number,
            timestamp=_aware(notification.timestamp).isoformat(),
            keep_seconds=max(notification.ttl, GREETINGS_KEEP),
        )
    if isinstance(notification, IncomingNotification):
        expires = remaining_seconds(notification, now, DEFAULT_INCOMING_TTL) - INCOMING_MARGIN
        if expires < MIN_EXPIRES:
            return Drop(f"incoming call arrived too late to answer ({expires:.1f} s left); dropped")
        return Enqueue(ON_INCOMING, CALLS_QUEUE, expires)
    remaining = remaining_seconds(notification, now, UNOWNED_EVENT_EXPIRES)
    if isinstance(notification, EndedNotification):
        return FollowUp(
            call_id=notification.content.call_id,
            task=ON_CALL_EVENT,
            expires=max(MIN_EXPIRES, min(remaining, EVENT_EXPIRES)),
            unowned=Enqueue(
                ON_CALL_EVENT, CALLS_QUEUE, max(MIN_EXPIRES, min(remaining, UNOWNED_EVENT_EXPIRES))
            ),
        )
    assert isinstance(notification, UnknownNotification)
    call_id = notification.call_id
    if call_id is None:
        return Drop(f"unknown notification type {kind!r} names no call; acknowledged and ignored")
    return FollowUp(
        call_id=call_id,
        task=ON_CALL_EVENT,
        expires=max(MIN_EXPIRES, min(remaining, EVENT_EXPIRES)),
        unowned=Drop(f"unknown notification type {kind!r} for a call no node owns; ignored"),
    )


def route_follow_up(follow_up: FollowUp, owner: str | None) -> Enqueue | Drop:
    """Finish a :class:`FollowUp` decision once the call's owner (or None) is known."""
    if owner:
        return Enqueue(follow_up.task, worker_direct(owner).name, follow_up.expires, node=owner)
    return follow_up.unowned
