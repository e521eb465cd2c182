"""The webhook ingress: an ASGI app that checks, deduplicates and enqueues GoTo notifications.

Routes:

- ``POST /webhooks/goto/{secret}``: the notification channel's URL. The
  secret is compared in constant time; a wrong one gets the same 404 as any
  unknown path, so the URL is no oracle. Bodies over 1 MiB get 413 (counted
  while reading, whatever Content-Length says). With
  ``CALLWORKER_WEBHOOK_HMAC_KEY`` set, ``X-Callworker-Signature: sha256=<hex>``
  (HMAC-SHA256 of the raw body) is required, else 401. Then
  :class:`~worker.ingress.intake.Intake` decides: 400 naming the bad field,
  204 when enqueued or dropped on purpose, 503 when Redis or the broker is
  unreachable (GoTo retries 5xx). Never a 500.
- ``OPTIONS`` on the same path: GoTo's channel check, 200 with
  ``Allow: POST, OPTIONS`` (404 with a wrong secret).
- ``GET /healthz``: the process is up. ``GET /readyz``: Redis answers a PING.

The secret and the full webhook path are never logged. Run it with
uvicorn's access log off (``callworker ingress`` does): the log line would
carry the path.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from redis import Redis
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from worker.config import ConfigError, Settings
from worker.ingress.dispatch import CeleryDispatcher, Dispatcher
from worker.ingress.intake import Clock, Intake, Unavailable, make_redis, redis_location, utc_now

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MIN_SECRET_LENGTH = 16
SIGNATURE_HEADER = "x-callworker-signature"
WEBHOOK_PATH = "/webhooks/goto/{secret}"
ALLOW = "POST, OPTIONS"
WEBHOOK_METHODS = ["POST", "OPTIONS", "GET", "PUT", "PATCH", "DELETE"]
INTAKE_THREADS = 8


class BodyTooLarge(Exception):
    pass


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404)


def _unavailable(detail: str = "temporarily unavailable, retry") -> Response:
    return PlainTextResponse(detail, status_code=503)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, or :class:`BodyTooLarge` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def signature_ok(key: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<hex>`` of HMAC-SHA256(key, body)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header[len("sha256=") :].strip().lower(), expected)


def create_app(
    settings: Settings,
    *,
    redis: Redis | None = None,
    dispatcher: Dispatcher | None = None,
    clock: Clock = utc_now,
    max_body: int = MAX_BODY,
) -> Starlette:
    """The ingress app. ``redis`` and ``dispatcher`` default to ones built from ``settings``."""
    secret = settings.webhook_secret.reveal().encode()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            "CALLWORKER_WEBHOOK_SECRET",
            f"must be at least {MIN_SECRET_LENGTH} characters (it is the webhook URL's only "
            "protection); generate one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'",
        )
    if (redis is None or dispatcher is None) and not settings.redis_url:
        raise ConfigError("CALLWORKER_REDIS_URL", "is required by the ingress")
    hmac_key = settings.webhook_hmac_key.reveal().encode()
    where = redis_location(settings.redis_url) if settings.redis_url else "redis"
    owned_redis = redis is None
    client = redis if redis is not None else make_redis(settings.redis_url)
    owned_dispatcher = dispatcher is None
    if dispatcher is None:
        from tasks.app import create_celery

        dispatcher = CeleryDispatcher(create_celery(settings))
    intake = Intake(client=client, dispatcher=dispatcher, clock=clock, where=where)
    executor = ThreadPoolExecutor(max_workers=INTAKE_THREADS, thread_name_prefix="ingress")

    async def webhook(request: Request) -> Response:
        if not hmac.compare_digest(request.path_params["secret"].encode(), secret):
            log.info("webhook with a wrong secret from %s: 404", _peer(request))
            return _not_found()
        if request.method == "OPTIONS":
            return Response(status_code=200, headers={"Allow": ALLOW})
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": ALLOW})
        try:
            body = await read_limited(request, max_body)
        except BodyTooLarge:
            log.info("webhook body over %d bytes refused: 413", max_body)
            return PlainTextResponse("body too large", status_code=413)
        except ClientDisconnect:
            log.info("webhook sender disconnected before the body was read")
            return Response(status_code=400)
        if hmac_key and not signature_ok(hmac_key, body, request.headers.get(SIGNATURE_HEADER)):
            log.info("webhook with a missing or wrong %s: 401", SIGNATURE_HEADER)
            return PlainTextResponse("bad or missing signature", status_code=401)
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                executor, intake.process, body
            )
        except Unavailable as exc:
            log.warning("%s; answered 503 so GoTo retries", exc)
            return _unavailable()
        except Exception:
            log.exception("unexpected error while handling a webhook; answered 503")
            return _unavailable()
        if outcome.status == 400:
            return PlainTextResponse(f"invalid notification: {outcome.detail}", status_code=400)
        return Response(status_code=outcome.status)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.get_running_loop().run_in_executor(executor, client.ping)
        except Exception as exc:
            log.warning("not ready: Redis at %s is unreachable: %s", where, exc)
            return _unavailable(f"not ready: Redis at {where} is unreachable")
        return PlainTextResponse("ready")

    async def on_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled %s in the ingress; answered 503", type(exc).__name__)
        return _unavailable()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            if owned_dispatcher:
                dispatcher.close()
            if owned_redis:
                client.close()

    return Starlette(
        routes=[
            # Every method reaches the handler, so the secret is checked before the method.
            Route(WEBHOOK_PATH, webhook, methods=WEBHOOK_METHODS),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers={Exception: on_error},
        lifespan=lifespan,
    )


def _peer(request: Request) -> str:
    return request.client.host if request.client else "unknown"
