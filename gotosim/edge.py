"""The HTTP edge of the sandbox: request log, injected faults, and the last-resort 500.

An ASGI middleware around the whole app. For every API request (anything not
under ``/_sim``) it buffers the body, records the request in the simulator's
:class:`~gotosim.requestlog.RequestLog`, applies the injected faults
(latency, 429, 5xx, before or after the request took effect), and buffers the
reply so it can be replaced. Any exception that escapes a handler becomes a
GoTo ``500 UNKNOWN_ERROR`` body (and a log line with the traceback), never a
stack trace on the wire. Bodies over 1 MiB are refused with 413.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gotosim.errors import PAYLOAD_TOO_LARGE, UNKNOWN_ERROR, ApiError
from gotosim.faults import RequestFaults
from gotosim.requestlog import decode_body

if TYPE_CHECKING:
    from gotosim.simulator import Simulator

logger = logging.getLogger(__name__)

MAX_REQUEST_BODY = 1_048_576

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


class _Disconnected(Exception):
    pass


class _TooLarge(Exception):
    pass


def render(error: ApiError) -> Reply:
    """An :class:`ApiError` as a complete JSON reply."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    return error.status, headers, json.dumps(error.body()).encode()


def is_control(path: str) -> bool:
    return path == "/_sim" or path.startswith("/_sim/")


class Edge:
    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            body = await _read_body(receive)
        except _Disconnected:
            return
        except _TooLarge:
            reply = render(ApiError(413, PAYLOAD_TOO_LARGE, "the request body is over 1 MiB"))
            await _send(send, reply)
            return
        if is_control(path):
            await _send(send, await self._run(scope, body))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = self.sim.requests.start(
            self.sim.clock.time(),
            method,
            path,
            scope.get("query_string", b"").decode("latin-1"),
            headers.get("authorization"),
            body,
            headers.get("content-type", ""),
        )
        faults = self.sim.faults.for_request(method, path, self.sim.clock.time())
        reply = await self._with_faults(scope, body, faults)
        await _send(send, reply)
        status, reply_headers, reply_body = reply
        content_type = dict(reply_headers).get(b"content-type", b"").decode("latin-1")
        record.status = status
        record.response = decode_body(reply_body, content_type)
        record.duration_ms = round((time.monotonic() - started) * 1000, 3)
        record.faults = faults.applied
        self.sim.changed()

    async def _with_faults(self, scope: Scope, body: bytes, faults: RequestFaults) -> Reply:
        if faults.delay_before:
            await asyncio.sleep(faults.delay_before)
        if faults.error is not None:
            return render(faults.error)
        reply = await self._run(scope, body)
        if faults.delay_after:
            await asyncio.sleep(faults.delay_after)
        if faults.error_after is not None:
            return render(faults.error_after)
        return reply

    async def _run(self, scope: Scope, body: bytes) -> Reply:
        """Run the app on a buffered body; capture its reply; turn a crash into a GoTo 500."""
        sent = False
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay, capture)
        except Exception:
            logger.exception("gotosim: unhandled error on %s %s", scope["method"], scope["path"])
            return render(
                ApiError(
                    500,
                    UNKNOWN_ERROR,
                    "the sandbox failed unexpectedly; see its log (this is a gotosim bug)",
                )
            )
        return status, headers, b"".join(chunks)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BODY:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, reply: Reply) -> None:
    status, headers, body = reply
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
