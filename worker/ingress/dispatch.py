"""Putting a routed notification on a Celery queue.

:class:`CeleryDispatcher` publishes with a real Celery app's ``send_task``
(by task name: the ingress imports no task code) to the Redis broker. A
notification for a node goes to that node's direct queue,
``celery.utils.nodenames.worker_direct(node)``. Broker failures surface as
:class:`DispatchError`, which the ingress answers with 503.
"""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery
from celery.utils.nodenames import worker_direct
from kombu.exceptions import KombuError, OperationalError

from worker.ingress.routing import Enqueue


def _summary(notification: dict[str, Any]) -> str:
    content = notification.get("content")
    call_id = content.get("callId") if isinstance(content, dict) else None
    return f"({notification.get('type')!r} notification, call {call_id or '-'})"


class DispatchError(Exception):
    """The broker did not take a message."""


class Dispatcher(Protocol):
    def send(self, route: Enqueue, notification: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class CeleryDispatcher:
    """Publish with ``celery_app.send_task``; thread-safe (kombu's producer pool)."""

    def __init__(self, celery_app: Celery) -> None:
        self.app = celery_app

    def send(self, route: Enqueue, notification: dict[str, Any]) -> None:
        queue: Any = worker_direct(route.node) if route.node else route.queue
        try:
            self.app.send_task(
                route.task,
                args=(notification,),
                queue=queue,
                expires=route.expires,
                # A short summary instead of Celery's saferepr of the whole body (costly).
                argsrepr=_summary(notification),
                kwargsrepr="{}",
                # Publishing goes straight to the queue's list; consumers declare queues.
                declare=[],
            )
        except (OperationalError, KombuError, OSError) as exc:
            raise DispatchError(
                f"broker refused {route.task} for queue {route.queue}: {exc}"
            ) from exc

    def close(self) -> None:
        self.app.close()
