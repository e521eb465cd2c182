from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers import ServerThread
from worker.config import Secret, Settings
from worker.ingress.app import create_app

SECRET = "test-webhook-secret-7c1f0b9d2e"


@dataclass
class Ingress:
    server: ServerThread
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def hook(self) -> str:
        return f"{self.server.url}/webhooks/goto/{SECRET}"


@pytest.fixture
def settings(redis_url: str, data_dir: Path) -> Settings:
    return Settings(redis_url=redis_url, webhook_secret=Secret(SECRET), data_dir=data_dir)


@pytest.fixture
def ingress(settings: Settings) -> Iterator[Ingress]:
    server = ServerThread(create_app(settings)).start()
    try:
        yield Ingress(server, settings)
    finally:
        server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()
