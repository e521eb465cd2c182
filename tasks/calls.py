"""Thin call tasks: parse the notification, call one service function, decide retry.

The ingress enqueues these by name (``send_task``), so the names are a wire
contract: ``tasks.calls.on_incoming`` and ``tasks.calls.on_call_event``. Each
takes the notification as JSON-ready data, exactly as GoTo sent it.

- A body that does not parse is dropped with an error log: redelivering it
  cannot fix it.
- A store or Redis that is briefly unreachable is retried, at most
  ``MAX_RETRIES`` times with back-off up to ``RETRY_BACKOFF_MAX`` s, well under
  the broker's visibility timeout. A retried message keeps its ``expires``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from celery import shared_task
from sqlalchemy.exc import OperationalError

from tasks.app import MAX_RETRIES, RETRY_BACKOFF_MAX
from worker.goto.events import (
    EndedNotification,
    IncomingNotification,
    Notification,
    NotificationError,
    UnknownNotification,
    parse_notification,
)
from worker.node import service

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

RETRYABLE: tuple[type[Exception], ...] = (OperationalError, redis.ConnectionError, TimeoutError)


def _task(name: str) -> Callable[[F], F]:
    """``shared_task`` with callworker's options, typed for mypy."""
    return cast(
        Callable[[F], F],
        shared_task(
            name=name,
            bind=True,
            acks_late=True,
            max_retries=MAX_RETRIES,
            autoretry_for=RETRYABLE,
            retry_backoff=True,
            retry_backoff_max=RETRY_BACKOFF_MAX,
            retry_jitter=True,
        ),
    )


def _parse(notification: dict[str, Any], task: str) -> Notification | None:
    try:
        return parse_notification(notification)
    except NotificationError as exc:
        log.error("%s dropped a notification that does not parse: %s", task, exc)
        return None


@_task("tasks.calls.on_incoming")
def on_incoming(self: Any, notification: dict[str, Any]) -> None:
    """A new inbound call: record it (and, later, answer it) on this node."""
    parsed = _parse(notification, "on_incoming")
    if parsed is None:
        return
    if not isinstance(parsed, IncomingNotification):
        log.error("on_incoming got a %r notification; dropped", parsed.type)
        return
    res = service.resources()
    service.handle_incoming(parsed, store=res.store, node=self.request.hostname, runtime=res.node)


@_task("tasks.calls.on_call_event")
def on_call_event(self: Any, notification: dict[str, Any]) -> None:
    """A follow-up event of a call (``ended``, or a type this version does not know)."""
    parsed = _parse(notification, "on_call_event")
    if parsed is None:
        return
    if not isinstance(parsed, EndedNotification | UnknownNotification):
        log.error("on_call_event got a %r notification; dropped", parsed.type)
        return
    res = service.resources()
    service.handle_call_event(parsed, store=res.store, node=self.request.hostname, runtime=res.node)
