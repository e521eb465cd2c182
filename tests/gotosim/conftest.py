"""Fixtures for gotosim tests: a real sandbox server and a real webhook receiver.

``make_sandbox(...)`` serves a fresh :class:`~gotosim.Simulator` with uvicorn
on 127.0.0.1; :class:`Sandbox` wraps an httpx client that adds the bearer
token for API calls and waits on ``GET /_sim/wait``. ``receiver`` is a second
uvicorn server that records every request it gets and answers with scripted
statuses, so delivery is checked over real HTTP.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gotosim import ManualClock, SimConfig, Simulator, create_app
from gotosim.media import FarEndFactory
from tests.helpers import ServerThread, free_port, wait_until

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed"

OFFER = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\nc=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 6C:A1:94:5A:63:3C:05:19:2A:C0:43:5F:A9:C4:F8:A8:6A:55:6A:88:B2:23:"
    "23:EA:B7:94:58:A3:E7:EF:57:20\r\na=setup:actpass\r\na=sendrecv\r\na=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=candidate:1 1 UDP 2013266431 127.0.0.1 50127 typ host\r\n"
)


def seed(name: str) -> Any:
    return json.loads((SEED / f"{name}.json").read_text())


def keys_of(data: Any) -> Any:
    """The nested key structure of JSON data (values reduced to their type names)."""
    if isinstance(data, dict):
        return {k: keys_of(v) for k, v in data.items()}
    return type(data).__name__


# -- webhook receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records requests; answers POSTs with scripted statuses per path (default 204)."""

    server: ServerThread | None = None
    requests: list[Received] = field(default_factory=list)
    post_script: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    options_status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.url

    def new_path(self) -> str:
        return f"/hooks/{uuid.uuid4().hex}"

    def url(self, path: str) -> str:
        return self.base + path

    def script(self, path: str, *statuses: int) -> None:
        with self.lock:
            self.post_script[path].extend(statuses)

    def received(self, path: str | None = None, method: str = "POST") -> list[Received]:
        with self.lock:
            return [
                r for r in self.requests if r.method == method and (path is None or r.path == path)
            ]

    def wait_for(self, path: str, count: int, method: str = "POST") -> list[Received]:
        def enough() -> list[Received] | None:
            got = self.received(path, method)
            return got if len(got) >= count else None

        try:
            found: list[Received] = wait_until(enough, timeout=15, what=f"{count} {method} {path}")
        except AssertionError:
            seen = [(r.method, r.path, r.body[:200]) for r in self.requests]
            raise AssertionError(f"wanted {count} {method} {path}; received {seen}") from None
        return found

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.post_script.clear()
            self.options_status.clear()

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        record = Received(request.method, path, dict(request.headers), await request.body())
        with self.lock:
            self.requests.append(record)
            if request.method == "OPTIONS":
                status = self.options_status.get(path, 204)
                return Response(status_code=status, headers={"Allow": "OPTIONS, POST"})
            script = self.post_script.get(path)
            status = script.popleft() if script else 204
        return Response(status_code=status)


@pytest.fixture(scope="session")
def _receiver_server() -> Iterator[Receiver]:
    receiver = Receiver()
    app = Starlette(
        routes=[Route("/{path:path}", receiver.handle, methods=["POST", "OPTIONS", "GET"])]
    )
    receiver.server = ServerThread(app).start()
    try:
        yield receiver
    finally:
        receiver.server.stop()


@pytest.fixture
def receiver(_receiver_server: Receiver) -> Receiver:
    _receiver_server.clear()
    return _receiver_server


# -- sandbox ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provisioned:
    nickname: str
    channel_id: str
    hook_path: str
    device_id: str
    sessions: dict[str, str]


class Sandbox:
    """A served simulator and a client for it."""

    def __init__(self, sim: Simulator, server: ServerThread) -> None:
        self.sim = sim
        self.server = server
        self.url = server.url
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=30)
        self.creds: dict[str, Any] = self.http.get("/_sim/credentials").json()
        self._token: str | None = None

    @property
    def org(self) -> str:
        return str(self.creds["organizationId"])

    def token(self, fresh: bool = False) -> str:
        if self._token is None or fresh:
            reply = self.http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": self.creds["refreshToken"]},
                auth=(self.creds["clientId"], self.creds["clientSecret"]),
            )
            assert reply.status_code == 200, reply.text
            self._token = str(reply.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        headers.setdefault("Authorization", f"Bearer {self.token()}")
        return self.http.request(method, path, headers=headers, **kwargs)

    def ctl(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, "/_sim" + path, **kwargs)

    def wait(self, kind: str, timeout: float = 15, **params: Any) -> list[dict[str, Any]]:
        query = {"kind": kind, "timeout": str(timeout), **{k: str(v) for k, v in params.items()}}
        reply = self.http.get("/_sim/wait", params=query, timeout=timeout + 15)
        assert reply.status_code == 200, f"wait {query}: {reply.status_code} {reply.text[:3000]}"
        items: list[dict[str, Any]] = reply.json()["items"]
        return items

    def call(self, call_id: str) -> dict[str, Any]:
        reply = self.ctl("GET", f"/calls/{call_id}")
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()
        return data

    def advance(self, seconds: float) -> None:
        reply = self.ctl("POST", "/clock/advance", json={"seconds": seconds})
        assert reply.status_code == 200, reply.text

    def channel(self, receiver: Receiver, nickname: str | None = None) -> tuple[str, str, str]:
        """(nickname, channelId, hook path) of a new channel pointing at ``receiver``."""
        nickname = nickname or f"{uuid.uuid4().hex[:8]}@gotosim.test"
        path = receiver.new_path()
        body = {
            "channelType": "Webhook",
            "webhookChannelData": {"webhook": {"url": receiver.url(path)}},
        }
        reply = self.api("POST", f"/notification-channel/v1/channels/{nickname}", json=body)
        assert reply.status_code == 201, reply.text
        return nickname, str(reply.json()["channelId"]), path

    def provision(
        self, receiver: Receiver, extensions: tuple[str, ...] = ("1000",), device_id: str = ""
    ) -> Provisioned:
        nickname, channel_id, path = self.channel(receiver)
        device_id = device_id or uuid.uuid4().hex
        device = {
            "clientInformation": {
                "deviceId": device_id,
                "appId": "callworker-tests",
                "appVersion": "1.0",
                "platform": "INTEGRATOR",
            },
            "callbackReference": {
                "incomingCallChannelId": channel_id,
                "sessionManagementChannelId": channel_id,
            },
        }
        reply = self.api("POST", "/web-calls/v1/devices", json=device)
        assert reply.status_code == 201, reply.text
        reply = self.api(
            "POST",
            f"/web-calls/v1/devices/{device_id}/extensions",
            json={"organizationId": self.org, "extensions": [{"number": n} for n in extensions]},
        )
        assert reply.status_code == 201, reply.text
        sessions = {e["number"]: e["sessionId"] for e in reply.json()["extensions"]}
        return Provisioned(nickname, channel_id, path, device_id, sessions)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


SandboxFactory = Callable[..., Sandbox]


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    made: list[Sandbox] = []

    def make(
        config: SimConfig | None = None,
        *,
        clock: ManualClock | None = None,
        far_end_factory: FarEndFactory | None = None,
        **options: Any,
    ) -> Sandbox:
        if config is None:
            config = SimConfig(webhook_retry_delay=0.01, **options)
        sim = Simulator(config, clock=clock, far_end_factory=far_end_factory)
        sandbox = Sandbox(sim, ServerThread(create_app(sim)).start())
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual(make_sandbox: SandboxFactory, clock: ManualClock) -> Sandbox:
    """A sandbox on a manual clock (move it with ``sandbox.advance(seconds)``)."""
    return make_sandbox(clock=clock)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connections are refused)."""
    return free_port()
