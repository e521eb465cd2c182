"""The webhook ingress: an ASGI app that checks, deduplicates and enqueues GoTo notifications.

Routes:

- ``POST /webhooks/goto/{secret}``: the notification channel's URL. The
  secret is compared in constant time; a wrong one gets the same 404 as any
  unknown path, so the URL is no oracle. Bodies over 1 MiB get 413 (counted
  while reading, whatever Content-Length says). With
  ``CALLWORKER_WEBHOOK_HMAC_KEY`` set, ``X-Callworker-Signature: sha256=<hex>``
  (HMAC-SHA256 of the raw body) is required, else 401. Then
  :class:`~worker.ingress.intake.Intake` decides: 400 naming the bad field,
  204 when enqueued or dropped on purpose, 503 when Redis is unreachable or
  refuses the write (GoTo retries 5xx). Never a 500.
- ``OPTIONS`` on the same path: GoTo's channel check, 200 with
  ``Allow: POST, OPTIONS`` (404 with a wrong secret).
- ``GET /healthz``: the process is up. ``GET /readyz``: Redis answers a PING.

The webhook path is served by :class:`WebhookEndpoint`, plain ASGI with no
framework in the way (it is the hot path: every request costs CPU the
ingress's one event loop cannot spend elsewhere); everything else by a small
Starlette app. Both run on uvicorn's event loop; nothing blocks it.

The secret and the full webhook path are never logged. Run it with
uvicorn's access log off (``callworker ingress`` does): the log line would
carry the path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from worker.config import ConfigError, Settings
from worker.ingress.dispatch import Dispatcher, RedisDispatcher, Unavailable, connect_redis
from worker.ingress.intake import Clock, Intake, redis_location, utc_now

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MIN_SECRET_LENGTH = 16
SIGNATURE_HEADER = "x-callworker-signature"
WEBHOOK_PREFIX = "/webhooks/goto/"
ALLOW = "POST, OPTIONS"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_ALLOW = ((b"allow", ALLOW.encode()),)
_Answer = tuple[int, str, Sequence[tuple[bytes, bytes]]]


def signature_ok(key: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<hex>`` of HMAC-SHA256(key, body)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header[len("sha256=") :].strip().lower(), expected)


async def _respond(
    send: Send, status: int, text: str = "", headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    if status == 204:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = text.encode()
    head = [*headers, *(_TEXT if text else ()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class WebhookEndpoint:
    """``/webhooks/goto/{secret}`` as plain ASGI: secret, method, size, signature, intake."""

    def __init__(
        self, secret: bytes, intake: Intake, *, hmac_key: bytes = b"", max_body: int = MAX_BODY
    ) -> None:
        self.secret = secret
        self.intake = intake
        self.hmac_key = hmac_key
        self.max_body = max_body

    async def answer(self, scope: Scope, receive: Receive, given: str) -> _Answer:
        """What to answer a request whose path names ``given`` as the secret.

        Status 0: nothing (the sender is gone). Sends nothing itself.
        """
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.secret):
            client = scope.get("client")
            log.info("webhook with a wrong secret from %s: 404", client[0] if client else "unknown")
            return 404, "Not Found", ()
        method = scope["method"]
        if method == "OPTIONS":
            return 200, "", _ALLOW
        if method != "POST":
            return 405, "", _ALLOW
        try:
            body = await self._read_body(scope, receive)
        except _BodyTooLarge:
            log.info("webhook body over %d bytes refused: 413", self.max_body)
            return 413, "body too large", ()
        except _Disconnected:
            log.info("webhook sender disconnected before the body was read")
            return 0, "", ()
        if self.hmac_key and not signature_ok(
            self.hmac_key, body, _header(scope, SIGNATURE_HEADER.encode())
        ):
            log.info("webhook with a missing or wrong %s: 401", SIGNATURE_HEADER)
            return 401, "bad or missing signature", ()
        try:
            outcome = await self.intake.process(body)
        except Unavailable as exc:
            log.warning("%s; answered 503 so GoTo retries", exc)
            return 503, "temporarily unavailable, retry", ()
        if outcome.status == 400:
            return 400, f"invalid notification: {outcome.detail}", ()
        return outcome.status, "", ()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body, or :class:`_BodyTooLarge` as soon as it passes the limit."""
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            # The usual case: the whole (small) body in one piece.
            if len(body) > self.max_body:
                raise _BodyTooLarge
            return body
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _BodyTooLarge
        parts = bytearray(body)
        while True:
            if len(parts) > self.max_body:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            parts += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if len(parts) > self.max_body:
            raise _BodyTooLarge
        return bytes(parts)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class IngressApp:
    """The ASGI app: the webhook path to :class:`WebhookEndpoint`, the rest to Starlette."""

    def __init__(self, webhook: WebhookEndpoint, other: Starlette) -> None:
        self.webhook = webhook
        self.other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(WEBHOOK_PREFIX):
                given = path[len(WEBHOOK_PREFIX) :]
                # What the route /webhooks/goto/{secret} matches: one non-empty segment.
                if given and "/" not in given:
                    try:
                        status, text, headers = await self.webhook.answer(scope, receive, given)
                    except Exception:
                        log.exception("unexpected error while handling a webhook; answered 503")
                        status, text, headers = 503, "temporarily unavailable, retry", ()
                    if status:
                        await _respond(send, status, text, headers)
                    return
        await self.other(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    dispatcher: Dispatcher | None = None,
    clock: Clock = utc_now,
    max_body: int = MAX_BODY,
) -> IngressApp:
    """The ingress app. ``dispatcher`` defaults to a :class:`RedisDispatcher` on ``settings``."""
    secret = settings.webhook_secret.reveal().encode()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            "CALLWORKER_WEBHOOK_SECRET",
            f"must be at least {MIN_SECRET_LENGTH} characters (it is the webhook URL's only "
            "protection); generate one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'",
        )
    if dispatcher is None and not settings.redis_url:
        raise ConfigError("CALLWORKER_REDIS_URL", "is required by the ingress")
    where = redis_location(settings.redis_url) if settings.redis_url else "redis"
    owned = dispatcher is None
    gateway: Dispatcher = dispatcher or RedisDispatcher(
        connect_redis(settings.redis_url), where=where
    )
    intake = Intake(dispatcher=gateway, clock=clock, queue_prefix=_queue_prefix(settings))
    webhook = WebhookEndpoint(
        secret, intake, hmac_key=settings.webhook_hmac_key.reveal().encode(), max_body=max_body
    )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            await gateway.ping()
        except Unavailable as exc:
            log.warning("not ready: %s", exc)
            return PlainTextResponse(f"not ready: Redis at {where} is unreachable", 503)
        return PlainTextResponse("ready")

    async def on_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled %s in the ingress; answered 503", type(exc).__name__)
        return PlainTextResponse("temporarily unavailable, retry", status_code=503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                await gateway.aclose()

    other = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers={Exception: on_error},
        lifespan=lifespan,
    )
    return IngressApp(webhook, other)


def _queue_prefix(settings: Settings) -> str:
    """The key prefix kombu puts on queue names, if the Celery config sets one."""
    from tasks.app import celery_config

    options = celery_config(settings).get("broker_transport_options", {})
    return str(options.get("global_keyprefix", ""))
