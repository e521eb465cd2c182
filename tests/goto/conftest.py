"""Fixtures for the GoTo client tests: a real FakeGoTo server and clients with a moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.goto.fakegoto import FakeGoTo
from tests.helpers import ServerThread
from worker.config import Secret
from worker.goto.auth import TokenManager, TokenStore
from worker.goto.client import GoToClient, RetryPolicy


@dataclass
class FakeTime:
    """A monotonic clock that only moves when an injected sleep is awaited."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeGoTo:
    return FakeGoTo()


class Switch:
    """An ASGI app that forwards to ``target``: one server for the session, a new fake per test."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if self.target is None:
            raise RuntimeError("no FakeGoTo is being served")
        await self.target(scope, receive, send)


@pytest.fixture(scope="session")
def switch() -> Iterator[tuple[Switch, ServerThread]]:
    app = Switch()
    thread = ServerThread(app).start()
    try:
        yield app, thread
    finally:
        thread.stop()


@pytest.fixture
def server(fake: FakeGoTo, switch: tuple[Switch, ServerThread]) -> Iterator[ServerThread]:
    """A real HTTP server on 127.0.0.1 serving this test's ``fake``."""
    app, thread = switch
    app.target = fake.app
    try:
        yield thread
    finally:
        fake.release()
        app.target = None


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


def make_tokens(
    fake: FakeGoTo,
    url: str,
    clock: FakeTime,
    *,
    store: TokenStore | None = None,
    refresh_token: str | None = None,
    **kwargs: Any,
) -> TokenManager:
    return TokenManager(
        auth_url=url,
        client_id=fake.client_id,
        client_secret=Secret(fake.client_secret),
        refresh_token=Secret(refresh_token or next(iter(fake.refresh_tokens))),
        store=store,
        clock=clock,
        **kwargs,
    )


def make_client(
    fake: FakeGoTo,
    url: str,
    clock: FakeTime,
    *,
    timeout: float | httpx.Timeout = 5.0,
    policy: RetryPolicy | None = None,
    tokens: TokenManager | None = None,
    **kwargs: Any,
) -> GoToClient:
    return GoToClient(
        api_url=url,
        tokens=tokens or make_tokens(fake, url, clock),
        timeout=timeout,
        policy=policy,
        sleep=clock.sleep,
        clock=clock,
        rand=lambda: 0.5,
        **kwargs,
    )


@pytest.fixture
async def client(
    fake: FakeGoTo, server: ServerThread, clock: FakeTime
) -> AsyncIterator[GoToClient]:
    async with make_client(fake, server.url, clock) as goto:
        yield goto
