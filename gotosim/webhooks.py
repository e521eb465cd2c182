"""Webhook delivery as GoTo does it: ordered per channel, two quick retries on 5xx.

Every notification becomes a :class:`NotificationRecord` (kept for
``GET /_sim/notifications``) and is queued on its channel; one asyncio task per
channel POSTs them in order with a shared ``httpx.AsyncClient``. What follows
a reply is decided by the pure :func:`next_step`:

- 2xx: delivered; clears the channel's unreachable mark;
- 404 or 410: failed, not retried; marks the channel unreachable
  (``webhookChannelData.unreachableTimestamp``); later notifications are
  still sent;
- 5xx, or no reply at all (refused, reset, timed out): retried at once, at most
  twice (three attempts), then dropped;
- anything else (3xx, other 4xx): dropped.

:meth:`Deliverer.check` is the OPTIONS request sent when a channel is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from gotosim.clock import Clock, iso_offset
from gotosim.faults import Faults
from gotosim.model import Channel, WebhookCheckResult

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
MAX_RECORDS = 10_000

Outcome = Literal["pending", "delivered", "failed", "dropped"]


@dataclass
class Attempt:
    time: float
    status: int | None
    error: str | None
    simulated: bool
    duration_ms: float

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": iso_offset(self.time), "durationMs": self.duration_ms}
        if self.status is not None:
            out["status"] = self.status
        if self.error is not None:
            out["error"] = self.error
        if self.simulated:
            out["simulated"] = True
        return out


@dataclass
class NotificationRecord:
    id: str
    channel_id: str
    type: str
    body: dict[str, Any]
    created_at: float
    call_id: str | None = None
    url: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outcome: Outcome = "pending"
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "channelId": self.channel_id,
            "type": self.type,
            "createdAt": iso_offset(self.created_at),
            "outcome": self.outcome,
            "attempts": [a.as_json() for a in self.attempts],
            "body": self.body,
        }
        for key, value in (("callId", self.call_id), ("url", self.url), ("reason", self.reason)):
            if value is not None:
                out[key] = value
        return out


class Step(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    UNREACHABLE = "unreachable"
    DROP = "drop"


def next_step(status: int | None, attempt: int, max_attempts: int = MAX_ATTEMPTS) -> Step:
    """What to do after attempt number ``attempt`` got ``status`` (``None``: no reply)."""
    if status is not None and 200 <= status < 300:
        return Step.DELIVERED
    if status in (404, 410):
        return Step.UNREACHABLE
    if status is None or status >= 500:
        return Step.RETRY if attempt < max_attempts else Step.DROP
    return Step.DROP


def redact_url(url: str) -> str:
    """A webhook URL fit for logs and error messages: origin only (paths carry secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{parts.netloc}/…" if parts.netloc else "<invalid URL>"


def webhook_url_ok(url: str) -> bool:
    """Whether ``url`` is an http(s) URL with a host and a valid port that httpx can send to."""
    try:
        parts = urlsplit(url)
        _ = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Deliverer:
    """Queues notifications per channel and delivers them in order."""

    def __init__(
        self,
        *,
        clock: Clock,
        faults: Faults,
        lookup_channel: Callable[[str], Channel | None],
        on_change: Callable[[], None],
        timeout: float = 5.0,
        retry_delay: float = 0.05,
    ) -> None:
        self.clock = clock
        self.faults = faults
        self.lookup_channel = lookup_channel
        self.on_change = on_change
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.records: list[NotificationRecord] = []
        self._queues: dict[str, asyncio.Queue[NotificationRecord]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": "gotosim"},
            )

    async def close(self) -> None:
        await self.stop_workers()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def stop_workers(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the deliverer is not started; call Simulator.start() first")
        return self._client

    def send(
        self, channel_id: str, body: dict[str, Any], call_id: str | None
    ) -> NotificationRecord:
        """Queue one notification on its channel."""
        record = NotificationRecord(
            id=str(uuid.uuid4()),
            channel_id=channel_id,
            type=str(body.get("type", "")),
            body=body,
            created_at=self.clock.time(),
            call_id=call_id,
        )
        self._keep(record)
        self._enqueue(record)
        return record

    def _keep(self, record: NotificationRecord) -> None:
        self.records.append(record)
        if len(self.records) > MAX_RECORDS:
            del self.records[: len(self.records) - MAX_RECORDS]

    def _enqueue(self, record: NotificationRecord) -> None:
        queue = self._queues.get(record.channel_id)
        if queue is None:
            queue = self._queues[record.channel_id] = asyncio.Queue()
            self._workers[record.channel_id] = asyncio.create_task(
                self._work(queue), name=f"gotosim-webhooks-{record.channel_id}"
            )
        queue.put_nowait(record)

    async def _work(self, queue: asyncio.Queue[NotificationRecord]) -> None:
        while True:
            record = await queue.get()
            try:
                await self._deliver(record)
            except Exception:
                logger.exception("gotosim: delivering notification %s failed", record.id)
                record.outcome, record.reason = "dropped", "internal error while delivering"
            finally:
                self.on_change()

    async def _deliver(self, record: NotificationRecord) -> None:
        channel = self.lookup_channel(record.channel_id)
        if channel is None:
            record.outcome = "dropped"
            record.reason = "the channel does not exist (never created, deleted or expired)"
            return
        record.url = channel.url
        mode = self.faults.for_notification(channel.channel_id)
        if mode == "drop":
            record.outcome, record.reason = "dropped", "dropped by an injected webhook fault"
            return
        await self._attempts(record, channel)
        if mode == "duplicate":
            copy = replace(record, id=str(uuid.uuid4()), attempts=[], outcome="pending")
            copy.reason = "duplicate sent by an injected webhook fault"
            self._keep(copy)
            self.on_change()
            await self._attempts(copy, channel)

    async def _attempts(self, record: NotificationRecord, channel: Channel) -> None:
        payload = json.dumps(record.body).encode()
        attempt = 0
        while True:
            attempt += 1
            status, error = await self._post(record, channel, payload)
            self.on_change()
            step = next_step(status, attempt)
            if step is Step.RETRY:
                await asyncio.sleep(self.retry_delay)
                continue
            if step is Step.DELIVERED:
                channel.unreachable_since = None
                record.outcome = "delivered"
            elif step is Step.UNREACHABLE:
                if channel.unreachable_since is None:
                    channel.unreachable_since = self.clock.time()
                record.outcome = "failed"
                record.reason = f"the receiver answered {status}; the channel is marked unreachable"
            else:
                record.outcome = "dropped"
                what = error or f"the receiver answered {status}"
                record.reason = f"not delivered after {attempt} attempt(s): {what}"
            logger.debug(
                "gotosim: %s to %s: %s after %d attempt(s)",
                record.type,
                redact_url(channel.url),
                record.outcome,
                attempt,
            )
            return

    async def _post(
        self, record: NotificationRecord, channel: Channel, payload: bytes
    ) -> tuple[int | None, str | None]:
        """One POST (or one injected failure); the attempt is added to ``record``."""
        started = time.monotonic()
        at = self.clock.time()
        simulated = self.faults.for_attempt(channel.channel_id)
        status: int | None = simulated
        error: str | None = None
        if simulated is None:
            try:
                response = await self.client.post(
                    channel.url,
                    content=payload,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                )
                status = response.status_code
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = _describe(exc)
        elapsed = round((time.monotonic() - started) * 1000, 3)
        record.attempts.append(Attempt(at, status, error, simulated is not None, elapsed))
        return status, error

    async def check(self, url: str) -> WebhookCheckResult:
        """The OPTIONS request GoTo sends to a new webhook: does the URL accept POST?"""
        at = self.clock.time()
        try:
            response = await self.client.options(url, timeout=self.timeout)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return WebhookCheckResult(
                url, at, ok=False, error=f"the OPTIONS request failed ({_describe(exc)})"
            )
        allow = response.headers.get("allow")
        allowed = {m.strip().upper() for m in (allow or "").split(",")}
        ok = response.is_success or (response.status_code == 405 and "POST" in allowed)
        return WebhookCheckResult(url, at, ok=ok, status=response.status_code, allow=allow)
