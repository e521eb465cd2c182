"""The ingress when Redis or the broker fails: 503 (GoTo retries), never 500, and recovery."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers import ServerThread, free_port, port_open, wait_until
from tests.ingress import notifications as n
from tests.ingress.conftest import SECRET
from tests.ingress.messages import queued
from worker.config import Secret, Settings
from worker.ingress.app import create_app
from worker.ingress.dispatch import DispatchError, RedisDispatcher, Write, connect_redis


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
         "--save", "", "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: port_open(port), timeout=10, what="private redis-server to listen")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    port = free_port()
    processes = [start_redis(port, tmp_path / "redis")]
    try:
        yield port, processes
    finally:
        for process in processes:
            if process.poll() is None:
                stop(process)


def test_redis_down_gives_503_and_not_ready_then_recovers(
    private_redis: tuple[int, list[subprocess.Popen[bytes]]],
    data_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    port, processes = private_redis
    url = f"redis://127.0.0.1:{port}/0"
    settings = Settings(redis_url=url, webhook_secret=Secret(SECRET), data_dir=data_dir)
    server = ServerThread(create_app(settings)).start()
    hook = f"{server.url}/webhooks/goto/{SECRET}"
    body = n.incoming("call-during-outage")
    try:
        with httpx.Client(timeout=10.0) as http:
            assert http.post(hook, json=n.incoming("call-before")).status_code == 204
            stop(processes[0])

            assert http.post(hook, json=body).status_code == 503
            assert http.get(f"{server.url}/readyz").status_code == 503
            assert http.get(f"{server.url}/healthz").status_code == 200
            assert f"Redis at 127.0.0.1:{port}/0 is unreachable" in caplog.text
            assert "answered 503 so GoTo retries" in caplog.text

            processes.append(start_redis(port, tmp_path / "redis-again"))
            # GoTo's retry of the same notification gets through once Redis is back.
            wait_until(
                lambda: http.post(hook, json=body).status_code == 204,
                timeout=15,
                interval=0.2,
                what="the ingress to accept webhooks again",
            )
            assert http.get(f"{server.url}/readyz").status_code == 200
        client = redis.Redis.from_url(url)
        [message] = queued(client, "calls")
        assert message.args[0]["content"]["callId"] == "call-during-outage"
        client.close()
    finally:
        server.stop()


class FailingDispatcher:
    """Fault injection: a broker that refuses, or a bug that raises, once."""

    def __init__(self, error: Exception, then: RedisDispatcher) -> None:
        self.error: Exception | None = error
        self.then = then

    async def write(self, item: Write) -> bool:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return await self.then.write(item)

    async def owner(self, call_id: str) -> str | None:
        return await self.then.owner(call_id)

    async def ping(self) -> None:
        await self.then.ping()

    async def aclose(self) -> None:
        await self.then.aclose()


@pytest.mark.parametrize(
    "error", [DispatchError("broker refused the message"), RuntimeError("a bug")]
)
def test_enqueue_failure_is_503_and_the_retry_is_not_taken_for_a_duplicate(
    settings: Settings, redis_url: str, error: Exception
) -> None:
    dispatcher = FailingDispatcher(error, RedisDispatcher(connect_redis(redis_url)))
    server = ServerThread(create_app(settings, dispatcher=dispatcher)).start()
    hook = f"{server.url}/webhooks/goto/{SECRET}"
    body = n.incoming("call-retried")
    try:
        with httpx.Client(timeout=10.0) as http:
            assert http.post(hook, json=body).status_code == 503
            assert http.post(hook, json=body).status_code == 204
        client = redis.Redis.from_url(redis_url)
        assert len(queued(client, "calls")) == 1
        client.close()
    finally:
        server.stop()


def test_hmac_signature_is_required_when_a_key_is_set(redis_url: str, data_dir: Path) -> None:
    key = "proxy-signing-key"
    settings = Settings(
        redis_url=redis_url,
        webhook_secret=Secret(SECRET),
        webhook_hmac_key=Secret(key),
        data_dir=data_dir,
    )
    server = ServerThread(create_app(settings)).start()
    hook = f"{server.url}/webhooks/goto/{SECRET}"
    body = json.dumps(n.incoming("call-signed")).encode()
    good = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
    try:
        with httpx.Client(timeout=10.0) as http:
            assert http.post(hook, content=body).status_code == 401
            sig = {"X-Callworker-Signature": bad}
            assert http.post(hook, content=body, headers=sig).status_code == 401
            client = redis.Redis.from_url(redis_url)
            assert client.keys("*") == []
            sig = {"X-Callworker-Signature": good}
            assert http.post(hook, content=body, headers=sig).status_code == 204
            assert len(queued(client, "calls")) == 1
            client.close()
    finally:
        server.stop()
