"""Retries, Retry-After, the no-double-dial rule, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.goto.conftest import FakeTime, make_client, make_tokens
from tests.goto.fakegoto import FakeGoTo, Reply, error
from tests.helpers import ServerThread, free_port
from worker.goto.client import GoToClient, RetryPolicy
from worker.goto.errors import (
    AmbiguousResultError,
    AuthError,
    RateLimitedError,
    ServerError,
    TransportError,
)

WC = "/web-calls/v1"
CALL = {
    "device_id": "d1",
    "organization_id": "org-1",
    "extension_number": "0523",
    "dial_string": "+13142797222",
    "in_call_channel_id": "Webhook.1",
    "sdp": "v=0\r\n",
}


async def test_429_honours_retry_after_seconds(
    fake: FakeGoTo, client: GoToClient, clock: FakeTime
) -> None:
    await client.create_device("d1", "Webhook.1")
    fake.push("GET", f"{WC}/devices/d1", error(429, "TOO_MANY", headers={"Retry-After": "7"}))
    assert (await client.get_device("d1")).device_id == "d1"
    assert clock.sleeps == [7.0]
    assert len(fake.seen("GET", f"{WC}/devices/d1")) == 2


async def test_429_honours_retry_after_http_date(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    now = datetime(2025, 3, 4, 5, 6, 0, tzinfo=UTC)
    fake.push(
        "GET",
        "/notification-channel/v1/channels",
        Reply(429, None, {"Retry-After": "Tue, 04 Mar 2025 05:06:12 GMT"}),
    )
    async with make_client(fake, server.url, clock, now=lambda: now) as goto:
        assert await goto.list_channels() == []
    assert clock.sleeps == [12.0]


async def test_429_on_make_call_is_retried_and_dials_once(
    fake: FakeGoTo, client: GoToClient, clock: FakeTime
) -> None:
    fake.push("POST", f"{WC}/calls", Reply(429, {"errorCode": "TOO_MANY"}, {"Retry-After": "2"}))
    call = await client.make_call(**CALL)
    assert list(fake.calls) == [call.id]
    assert clock.sleeps == [2.0]
    assert len(fake.seen("POST", f"{WC}/calls")) == 2


async def test_503_then_200_is_retried_with_backoff(
    fake: FakeGoTo, client: GoToClient, clock: FakeTime
) -> None:
    await client.create_device("d1", "Webhook.1")
    fake.push("GET", f"{WC}/devices/d1", error(503, "UNAVAILABLE"), error(502, "UNKNOWN_ERROR"))
    assert (await client.get_device("d1")).device_id == "d1"
    # base 0.5 s doubling, equal jitter with rand=0.5: 0.375 then 0.75
    assert clock.sleeps == [0.375, 0.75]
    assert len(fake.seen("GET", f"{WC}/devices/d1")) == 3


async def test_retries_are_bounded_by_attempts(
    fake: FakeGoTo, client: GoToClient, clock: FakeTime
) -> None:
    fake.push("GET", f"{WC}/devices/d1", *[error(504, "UNKNOWN_ERROR")] * 6)
    with pytest.raises(ServerError) as info:
        await client.get_device("d1")
    assert len(fake.seen("GET", f"{WC}/devices/d1")) == 4, fake.describe()
    assert len(clock.sleeps) == 3
    assert "HTTP 504 UNKNOWN_ERROR" in str(info.value)
    assert "gave up after 4 attempts" in str(info.value)


async def test_retries_are_bounded_by_total_time(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    slow = Reply(503, {"errorCode": "UNAVAILABLE"}, {"Retry-After": "10"})
    fake.push("GET", f"{WC}/devices/d1", *[slow] * 6)
    policy = RetryPolicy(max_attempts=10, max_elapsed=25.0)
    async with make_client(fake, server.url, clock, policy=policy) as goto:
        with pytest.raises(ServerError):
            await goto.get_device("d1")
    assert clock.sleeps == [10.0, 10.0]
    assert len(fake.seen("GET", f"{WC}/devices/d1")) == 3


async def test_retry_after_past_the_budget_raises_rate_limited_with_the_advice(
    fake: FakeGoTo, client: GoToClient, clock: FakeTime
) -> None:
    fake.push("GET", f"{WC}/devices/d1", Reply(429, {"errorCode": "LIMIT"}, {"Retry-After": "120"}))
    with pytest.raises(RateLimitedError) as info:
        await client.get_device("d1")
    assert info.value.retry_after == 120.0
    assert "retry after 120 s" in str(info.value)
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_on_make_call_is_not_retried(
    fake: FakeGoTo, client: GoToClient, clock: FakeTime, status: int
) -> None:
    fake.push("POST", f"{WC}/calls", error(status, "UNKNOWN_ERROR"))
    with pytest.raises(AmbiguousResultError) as info:
        await client.make_call(**CALL)
    assert len(fake.seen("POST", f"{WC}/calls")) == 1, fake.describe()
    assert clock.sleeps == []
    exc = info.value
    assert exc.status == status and exc.error_code == "UNKNOWN_ERROR"
    assert str(exc).startswith(f"POST {WC}/calls got HTTP {status} UNKNOWN_ERROR")
    assert "the call may have been placed" in str(exc)


async def test_read_timeout_on_make_call_never_dials_twice(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    fake.push("POST", f"{WC}/calls", Reply(201, {"id": "late"}, stall=True))
    timeout = httpx.Timeout(5.0, read=0.5)
    async with make_client(fake, server.url, clock, timeout=timeout) as goto:
        with pytest.raises(AmbiguousResultError) as info:
            await goto.make_call(**CALL)
    assert len(fake.seen("POST", f"{WC}/calls")) == 1, fake.describe()
    assert clock.sleeps == []
    message = str(info.value)
    assert message.startswith(f"POST {WC}/calls timed out after the request was sent; ")
    assert "the call may have been placed: check the call list / wait for notifications" in message
    assert "before dialing +13142797222 again" in message
    assert info.value.status is None
    assert info.value.check.startswith("the call may have been placed")


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        (
            "POST",
            f"{WC}/calls/c1/answer",
            lambda g: g.answer("c1", sdp="v=0", in_call_channel_id="ch"),
        ),
        ("POST", f"{WC}/calls/c1/reject", lambda g: g.send_to_voicemail("c1")),
        ("POST", f"{WC}/calls/c1/dtmf", lambda g: g.dtmf("c1", "5")),
        ("POST", f"{WC}/calls/c1/blind-transfer", lambda g: g.blind_transfer("c1", "+1555")),
        ("POST", f"{WC}/devices", lambda g: g.create_device("d7", "ch")),
        ("POST", f"{WC}/devices/d7/extensions", lambda g: g.create_extensions("d7", "o", ["1"])),
        (
            "POST",
            "/notification-channel/v1/channels/nick",
            lambda g: g.create_webhook_channel("nick", "http://127.0.0.1:9/x"),
        ),
    ],
)
async def test_other_unsafe_requests_are_not_repeated_after_a_timeout(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, method: str, path: str, call: object
) -> None:
    fake.push(method, path, Reply(200, {}, stall=True))
    async with make_client(fake, server.url, clock, timeout=httpx.Timeout(5.0, read=0.3)) as goto:
        with pytest.raises(AmbiguousResultError) as info:
            await call(goto)  # type: ignore[operator]
    assert len(fake.seen(method, path)) == 1, fake.describe()
    assert "may have been" in info.value.check


async def test_read_timeout_on_a_safe_request_is_retried(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> None:
    fake.push("GET", "/notification-channel/v1/channels", Reply(200, {"items": []}, stall=True))
    async with make_client(fake, server.url, clock, timeout=httpx.Timeout(5.0, read=0.3)) as goto:
        assert await goto.list_channels() == []
    assert len(fake.seen("GET", "/notification-channel/v1/channels")) == 2
    assert len(clock.sleeps) == 1


async def test_connect_error_is_retried_until_the_server_is_up(
    fake: FakeGoTo, clock: FakeTime
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started: list[ServerThread] = []

    async def sleep_then_start(seconds: float) -> None:
        await clock.sleep(seconds)
        if len(clock.sleeps) == 2:
            started.append(ServerThread(fake.app, port=port).start())

    tokens = make_tokens(fake, url, clock)
    goto = GoToClient(
        api_url=url, tokens=tokens, sleep=sleep_then_start, clock=clock, rand=lambda: 0.5
    )
    try:
        call = await goto.make_call(**CALL)
        assert list(fake.calls) == [call.id]
        assert len(clock.sleeps) == 2
        assert len(fake.seen("POST", f"{WC}/calls")) == 1
    finally:
        await goto.aclose()
        for thread in started:
            thread.stop()


async def test_unreachable_api_is_a_transport_error_after_bounded_attempts(
    fake: FakeGoTo, clock: FakeTime
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with make_client(fake, url, clock) as goto:
        with pytest.raises(TransportError) as info:
            await goto.get_device("d1")
    assert info.value.sent is False
    assert len(clock.sleeps) == 3
    assert "POST /oauth/token to 127.0.0.1" in str(info.value)
    assert "gave up after 4 attempts" in str(info.value)
    assert "CALLWORKER_GOTO_API_URL" in str(info.value)


@pytest.fixture
async def dropper() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads one whole request per connection, then hangs up without replying."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        received.append(head + body)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.close()
        await server.wait_closed()


async def test_connection_dropped_after_sending_make_call_is_ambiguous(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, dropper: tuple[str, list[bytes]]
) -> None:
    url, received = dropper
    tokens = make_tokens(fake, server.url, clock)
    async with GoToClient(api_url=url, tokens=tokens, sleep=clock.sleep, clock=clock) as goto:
        with pytest.raises(AmbiguousResultError) as info:
            await goto.make_call(**CALL)
        assert len(received) == 1
        assert received[0].startswith(b"POST /web-calls/v1/calls ")
        assert "lost its connection after the request was sent" in str(info.value)
        assert clock.sleeps == []
        # A hang-up is safe to repeat: it is retried to the bound.
        with pytest.raises(TransportError) as lost:
            await goto.hangup("c1")
        assert lost.value.sent is True
        assert len(received) == 1 + 4


async def test_delete_that_worked_before_its_reply_was_lost_counts_as_done(
    fake: FakeGoTo, client: GoToClient, clock: FakeTime
) -> None:
    call = await client.make_call(**CALL)
    del fake.calls[call.id]  # the first DELETE "worked" but its reply was a 504
    fake.push("DELETE", f"{WC}/calls/{call.id}", error(504, "UNKNOWN_ERROR"))
    await client.hangup(call.id)
    assert len(fake.seen("DELETE", f"{WC}/calls/{call.id}")) == 2


async def test_tokens_never_reach_logs_reprs_or_errors(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.rotate = True
    configured = next(iter(fake.refresh_tokens))
    errors: list[Exception] = []
    async with make_client(fake, server.url, clock) as goto:
        await goto.create_device("d1", "Webhook.1")
        fake.expire_tokens()
        await goto.get_device("d1")
        fake.push("GET", f"{WC}/devices/d1", error(503, "UNAVAILABLE"))
        await goto.get_device("d1")
        fake.push(
            "GET",
            f"{WC}/devices/d2",
            error(401, "AUTHN_INVALID_TOKEN", f"bad token {fake.issued[-1]}"),
        )
        with pytest.raises(AuthError) as info:
            await goto.get_device("d2")
        errors.append(info.value)
        with pytest.raises(AmbiguousResultError) as ambiguous:
            fake.push("POST", f"{WC}/calls", error(502, "UNKNOWN_ERROR"))
            await goto.make_call(**CALL)
        errors.append(ambiguous.value)
        shown = [repr(goto), repr(goto.tokens), repr(goto.tokens.current)]
    secrets = [*fake.issued, configured, *fake.refresh_tokens, fake.client_secret]
    assert len(fake.issued) == 2 and len(secrets) >= 5
    records = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert any("refreshing it once" in m for m in records)
    texts = records + [str(e) for e in errors] + [repr(e) for e in errors] + shown
    for secret in secrets:
        leaks = [t for t in texts if secret in t]
        assert leaks == [], f"{secret[:14]}... leaked in {leaks}"
