"""The ingress's work on one webhook body: parse, decide, dedup, route, enqueue.

:meth:`Intake.process` takes the raw body (already size-checked and, where
configured, signature-checked) and returns the HTTP status to answer:

- 400 with the reason when the body is not a valid notification;
- 204 when it was enqueued, recorded, or dropped on purpose (stale, a
  duplicate, an unknown type or source): GoTo must not retry those;
- it raises :class:`Unavailable` when Redis or the broker cannot be reached,
  which the app answers with 503 so GoTo retries.

Blocking I/O (synchronous redis-py and kombu), meant to run on a worker
thread of the ASGI app, never on its event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.goto.events import (
    Notification,
    NotificationError,
    dump_notification,
    notification_call_id,
    parse_notification_json,
)
from worker.ingress.dedup import Deduplicator, dedup_key, window_seconds
from worker.ingress.dispatch import Dispatcher, DispatchError
from worker.ingress.routing import (
    Drop,
    Enqueue,
    FollowUp,
    RecordGreetings,
    classify,
    route_follow_up,
)
from worker.logs import call_id_var
from worker.ownership import Ownership

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


def make_redis(url: str) -> redis.Redis:
    """A Redis client that fails fast: the ingress answers 503 instead of hanging."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class Unavailable(Exception):
    """Redis or the broker is unreachable; GoTo should retry the delivery."""


@dataclass(frozen=True)
class Outcome:
    status: int
    detail: str = ""


class Intake:
    """Parse, dedup and route webhook bodies; see the module docstring."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        dispatcher: Dispatcher,
        clock: Clock = utc_now,
        where: str = "redis",
    ) -> None:
        self.redis = client
        self.dedup = Deduplicator(client)
        self.ownership = Ownership(client)
        self.dispatcher = dispatcher
        self.clock = clock
        self.where = where

    def process(self, body: bytes) -> Outcome:
        try:
            notification = parse_notification_json(body)
        except NotificationError as exc:
            log.info("rejected a webhook body (400): %s", exc)
            return Outcome(400, str(exc))
        token = call_id_var.set(notification_call_id(notification) or "-")
        try:
            decision = classify(notification, self.clock())
            if isinstance(decision, Drop):
                log.log(decision.level, "%s", decision.reason)
                return Outcome(204)
            key = dedup_key(notification)
            try:
                if not self.dedup.begin(key):
                    log.info("duplicate %s notification dropped", notification.type)
                    return Outcome(204)
                try:
                    self._perform(decision, notification)
                except BaseException:
                    self.dedup.abandon(key)
                    raise
                self.dedup.done(key, window_seconds(notification))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise Unavailable(f"Redis at {self.where} is unreachable: {exc}") from exc
            except redis.RedisError as exc:
                raise Unavailable(f"Redis at {self.where} failed: {exc}") from exc
            except DispatchError as exc:
                raise Unavailable(str(exc)) from exc
            return Outcome(204)
        finally:
            call_id_var.reset(token)

    def _perform(
        self, decision: Enqueue | RecordGreetings | FollowUp, notification: Notification
    ) -> None:
        if isinstance(decision, RecordGreetings):
            self.redis.set(
                greetings_key(decision.organization_id, decision.extension_number),
                decision.timestamp,
                ex=decision.keep_seconds,
            )
            log.info(
                "greetings for extension %s of organization %s recorded",
                decision.extension_number,
                decision.organization_id,
            )
            return
        route: Enqueue | Drop
        if isinstance(decision, FollowUp):
            route = route_follow_up(decision, self.ownership.owner(decision.call_id))
        else:
            route = decision
        if isinstance(route, Drop):
            log.log(route.level, "%s", route.reason)
            return
        self.dispatcher.send(route, dump_notification(notification))
        # Routine and frequent: DEBUG. Refusals and drops are logged at INFO above.
        log.debug(
            "%s notification enqueued to %s (expires in %.0f s)",
            notification.type,
            route.queue,
            route.expires,
        )
