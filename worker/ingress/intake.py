"""The ingress's work on one webhook body: parse, decide, dedup, route, enqueue.

:meth:`Intake.process` takes the raw body (already size-checked and, where
configured, signature-checked) and returns the HTTP status to answer:

- 400 with the reason when the body is not a valid notification;
- 204 when it was enqueued, recorded, or dropped on purpose (stale, a
  duplicate, an unknown type or source): GoTo must not retry those;
- it raises :class:`Unavailable` when Redis cannot be reached or refuses the
  write, which the app answers with 503 so GoTo retries.

It runs on the ASGI app's event loop: parsing and routing are pure and
quick, and Redis is reached through a :class:`~worker.ingress.dispatch.Dispatcher`
(asyncio, batched). The task message carries the notification's JSON as GoTo
sent it; the task parses it again.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pydantic import ValidationError

from worker.goto.events import (
    IncomingNotification,
    Notification,
    NotificationError,
    dump_notification,
    notification_call_id,
    parse_notification_json,
)
from worker.ingress.dedup import dedup_key, window_seconds
from worker.ingress.dispatch import Dispatcher, DispatchError, Unavailable, Write
from worker.ingress.message import MessageEncoder
from worker.ingress.routing import (
    Drop,
    Enqueue,
    FollowUp,
    RecordGreetings,
    classify,
    route_follow_up,
)
from worker.logs import call_id_var

__all__ = ["Clock", "DispatchError", "Intake", "Outcome", "Unavailable", "parse_body"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def greetings_key(organization_id: str, extension_number: str) -> str:
    """Where the ingress notes the last ``greetings`` of an extension (its timestamp)."""
    return f"callworker:greetings:{organization_id}:{extension_number}"


def redis_location(url: str) -> str:
    """``host:port/db`` of a Redis URL, without any password, for log lines."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


def parse_body(body: bytes) -> tuple[Notification, bytes]:
    """The notification in ``body`` and its JSON text for the task message.

    ``incoming`` (the frequent type) is validated straight from the bytes; any
    other body, or one that fails, goes through the general parser, which
    names the bad field in its :class:`NotificationError`. The JSON text is
    the body itself when it is UTF-8 (without a byte order mark), else the
    parsed notification re-encoded.
    """
    try:
        # pydantic's JSON parser accepts UTF-8 only, and no byte order mark.
        return IncomingNotification.model_validate_json(body), body
    except ValidationError:
        pass
    notification = parse_notification_json(body)
    if not body.startswith(codecs.BOM_UTF8):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return notification, body
    return notification, json.dumps(dump_notification(notification)).encode()


def _summary(notification: Notification, call_id: str) -> str:
    """The task's ``argsrepr``: short, instead of Celery's repr of the whole notification."""
    return f"({notification.type!r} notification, call {call_id})"


@dataclass(frozen=True)
class Outcome:
    status: int
    detail: str = ""


ACCEPTED = Outcome(204)


class Intake:
    """Parse, dedup and route webhook bodies; see the module docstring."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        clock: Clock = utc_now,
        encoder: MessageEncoder | None = None,
        queue_prefix: str = "",
    ) -> None:
        self.dispatcher = dispatcher
        self.clock = clock
        self.encoder = encoder or MessageEncoder()
        # Celery's broker_transport_options["global_keyprefix"], if set: kombu's key names.
        self.queue_prefix = queue_prefix

    async def process(self, body: bytes) -> Outcome:
        try:
            notification, payload = parse_body(body)
        except NotificationError as exc:
            log.info("rejected a webhook body (400): %s", exc)
            return Outcome(400, str(exc))
        call_id = notification_call_id(notification) or "-"
        token = call_id_var.set(call_id)
        try:
            # One coroutine for the whole hot path: every await level costs on each resume.
            now = self.clock()
            decision = classify(notification, now)
            route: Enqueue | Drop
            if isinstance(decision, Enqueue):
                route = decision
            elif isinstance(decision, FollowUp):
                route = route_follow_up(decision, await self.dispatcher.owner(decision.call_id))
            elif isinstance(decision, RecordGreetings):
                await self._greetings(notification, decision)
                return ACCEPTED
            else:
                route = decision
            if isinstance(route, Drop):
                log.log(route.level, "%s", route.reason)
                return ACCEPTED
            message = self.encoder.encode(
                task=route.task,
                argument_json=payload,
                queue=route.queue,
                expires=route.expires,
                now=now,
                argsrepr=_summary(notification, call_id),
            )
            write = Write(
                dedup_key(notification),
                self.queue_prefix + route.queue,
                message,
                window_seconds(notification),
            )
            if not await self.dispatcher.write(write):
                log.info("duplicate %s notification dropped", notification.type)
                return ACCEPTED
            # Routine and frequent: DEBUG. Refusals and drops are logged at INFO above.
            log.debug(
                "%s notification enqueued to %s (expires in %.0f s)",
                notification.type,
                route.queue,
                route.expires,
            )
            return ACCEPTED
        finally:
            call_id_var.reset(token)

    async def _greetings(self, notification: Notification, decision: RecordGreetings) -> None:
        target = greetings_key(decision.organization_id, decision.extension_number)
        write = Write(
            dedup_key(notification),
            target,
            decision.timestamp,
            window_seconds(notification),
            "set",
            decision.keep_seconds,
        )
        if await self.dispatcher.write(write):
            log.info(
                "greetings for extension %s of organization %s recorded",
                decision.extension_number,
                decision.organization_id,
            )
        else:
            log.info("duplicate greetings notification dropped")
