"""The webhook endpoint over real HTTP, with a real redis-server and Celery publishing."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from tests.ingress import notifications as n
from tests.ingress.conftest import SECRET, Ingress
from tests.ingress.messages import all_queued, queued
from worker.ingress.app import MAX_BODY
from worker.ingress.intake import greetings_key
from worker.ownership import Ownership


def test_incoming_is_enqueued_on_the_calls_queue_with_an_expiry(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis
) -> None:
    sent = datetime.now(UTC)
    response = client.post(ingress.hook, json=n.incoming("call-1", timestamp=sent))
    assert response.status_code == 204
    [message] = queued(rdb, "calls")
    assert message.task == "tasks.calls.on_incoming"
    assert message.args[0]["content"]["callId"] == "call-1"
    assert message.args[0]["type"] == "incoming"
    assert message.expires is not None
    left = (datetime.fromisoformat(message.expires) - sent).total_seconds()
    assert 20 < left < 30, f"expected an expiry under the 30 s ttl, got {left:.1f} s"
    assert all_queued(rdb) == {"calls": 1}


def test_five_copies_of_one_incoming_enqueue_exactly_one_message(
    ingress: Ingress, rdb: redis.Redis
) -> None:
    body = json.dumps(n.incoming("call-dup")).encode()
    statuses: list[int] = []
    barrier = threading.Barrier(5)

    def deliver() -> None:
        with httpx.Client(timeout=10.0) as http:
            barrier.wait()
            statuses.append(http.post(ingress.hook, content=body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [204] * 5
    assert len(queued(rdb, "calls")) == 1
    # A later redelivery with different spelling (ttl as a number) is a duplicate too.
    again = json.loads(body)
    again["ttl"] = 30
    with httpx.Client() as http:
        assert http.post(ingress.hook, json=again).status_code == 204
    assert len(queued(rdb, "calls")) == 1


def test_wrong_secret_is_404_like_any_unknown_path_and_enqueues_nothing(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"{ingress.url}/webhooks/goto/{SECRET[:-1]}x"
    response = client.post(wrong, json=n.incoming("call-2"))
    unknown = client.post(f"{ingress.url}/no/such/path", json=n.incoming("call-2"))
    assert response.status_code == 404
    assert (response.status_code, response.text) == (unknown.status_code, unknown.text)
    assert client.options(wrong).status_code == 404
    assert rdb.keys("*") == []
    # The server side logged the rejection without the secret (the test's own httpx
    # client logs its request URLs; those lines are not the ingress's).
    server_lines = [
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    ]
    assert any("wrong secret" in line for line in server_lines)
    assert not [line for line in server_lines if SECRET[:-1] in line]


def test_options_answers_the_channel_check(ingress: Ingress, client: httpx.Client) -> None:
    response = client.options(ingress.hook)
    assert response.status_code == 200
    assert response.headers["allow"] == "POST, OPTIONS"
    assert client.get(ingress.hook).status_code == 405


def test_oversized_bodies_are_refused_with_413(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis
) -> None:
    big = b'{"pad": "' + b"x" * MAX_BODY + b'"}'
    assert client.post(ingress.hook, content=big).status_code == 413

    def chunks() -> object:
        # No Content-Length: the size is only known by counting while reading.
        yield b'{"pad": "'
        for _ in range(MAX_BODY // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    response = client.post(ingress.hook, content=chunks())  # type: ignore[arg-type]
    assert response.status_code == 413
    assert rdb.keys("*") == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (json.dumps({"source": "WebRTC", "timestamp": "2026-01-01T00:00:00Z"}).encode(), "type"),
        (json.dumps({**n.incoming("c"), "ttl": "abc"}).encode(), "ttl"),
        (json.dumps({**n.incoming("c"), "timestamp": "yesterday"}).encode(), "timestamp"),
        (
            json.dumps(
                {**n.incoming("c"), "content": {**n.incoming("c")["content"], "callId": 7}}
            ).encode(),
            "content.callId",
        ),
    ],
)
def test_invalid_bodies_get_400_naming_the_field(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis, body: bytes, named: str
) -> None:
    response = client.post(ingress.hook, content=body)
    assert response.status_code == 400
    assert f"invalid notification: {named}:" in response.text
    assert rdb.keys("*") == []


def test_stale_notifications_are_dropped_and_acknowledged(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    old = datetime.now(UTC) - timedelta(seconds=45)
    assert client.post(ingress.hook, json=n.incoming("call-old", timestamp=old)).status_code == 204
    # Still inside its ttl, but too late to answer usefully (less than the margin left).
    late = datetime.now(UTC) - timedelta(seconds=27)
    late_call = n.incoming("call-late", timestamp=late)
    assert client.post(ingress.hook, json=late_call).status_code == 204
    assert rdb.keys("*") == []
    assert "stale incoming notification" in caplog.text
    assert "too late to answer" in caplog.text


def test_unknown_types_and_sources_are_acknowledged_and_logged(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert client.post(ingress.hook, json=n.other("hold")).status_code == 204
    assert client.post(ingress.hook, json=n.other("hold", call_id="nobody")).status_code == 204
    foreign = {**n.incoming("call-x"), "source": "notification-websocket"}
    assert client.post(ingress.hook, json=foreign).status_code == 204
    assert all_queued(rdb) == {}
    assert "unknown notification type 'hold' names no call" in caplog.text
    assert "for a call no node owns" in caplog.text
    assert "source 'notification-websocket' is not 'WebRTC'" in caplog.text


def test_events_of_an_owned_call_go_to_the_owners_queue(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis
) -> None:
    ownership = Ownership(rdb)
    assert ownership.claim("call-a", "node-a@host", ttl=60)
    assert ownership.claim("call-b", "node-b@host", ttl=60)
    assert client.post(ingress.hook, json=n.ended("call-a")).status_code == 204
    assert client.post(ingress.hook, json=n.other("hold", call_id="call-b")).status_code == 204
    assert client.post(ingress.hook, json=n.ended("call-b")).status_code == 204
    assert client.post(ingress.hook, json=n.ended("call-nobody")).status_code == 204

    [to_a] = queued(rdb, "node-a@host.dq2")
    assert (to_a.task, to_a.args[0]["content"]["callId"]) == ("tasks.calls.on_call_event", "call-a")
    to_b = queued(rdb, "node-b@host.dq2")
    assert [(m.args[0]["type"], m.args[0]["content"]["callId"]) for m in to_b] == [
        ("hold", "call-b"),
        ("ended", "call-b"),
    ]
    # An ended call no node owns goes to the shared queue, so the store is updated.
    [shared] = queued(rdb, "calls")
    assert (shared.task, shared.args[0]["content"]["callId"]) == (
        "tasks.calls.on_call_event",
        "call-nobody",
    )
    sent = datetime.fromisoformat(to_a.args[0]["timestamp"])
    assert to_a.expires is not None
    assert (datetime.fromisoformat(to_a.expires) - sent).total_seconds() <= 61


def test_greetings_are_recorded_for_provisioning(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis
) -> None:
    body = n.greetings()
    assert client.post(ingress.hook, json=body).status_code == 204
    stored = rdb.get(greetings_key(n.ORG, n.EXTENSION))
    assert stored is not None
    assert datetime.fromisoformat(stored.decode()) == datetime.fromisoformat(body["timestamp"])
    assert all_queued(rdb) == {}


def test_health_endpoints(ingress: Ingress, client: httpx.Client) -> None:
    assert client.get(f"{ingress.url}/healthz").status_code == 200
    ready = client.get(f"{ingress.url}/readyz")
    assert (ready.status_code, ready.text) == (200, "ready")


def test_ingress_stays_healthy_after_bad_input(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis
) -> None:
    bad = [b"", b"\xff\xfe", b"null", b"{}", b'{"type": 5}', b"9" * 5000, b'{"type": "x"}']
    for body in bad:
        assert client.post(ingress.hook, content=body).status_code == 400
    assert client.post(ingress.hook, content=b"x" * (MAX_BODY + 1)).status_code == 413
    assert client.get(f"{ingress.url}/healthz").status_code == 200
    assert client.post(ingress.hook, json=n.incoming("call-after")).status_code == 204
    assert len(queued(rdb, "calls")) == 1


def test_the_task_gets_the_notification_json_as_sent(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis
) -> None:
    sent = n.incoming("call-raw", number="+15550001111")
    sent["content"]["name"] = 'Zoë "the caller"'
    sent["futureField"] = {"nested": [1, 2.5, None]}
    body = json.dumps(sent, ensure_ascii=False).encode()
    assert client.post(ingress.hook, content=body).status_code == 204
    [message] = queued(rdb, "calls")
    assert message.args == [sent]
    assert message.args[0]["ttl"] == "30"


async def test_concurrent_webhooks_are_each_enqueued_once(
    ingress: Ingress, rdb: redis.Redis
) -> None:
    call_ids = [f"call-burst-{i}" for i in range(40)]
    bodies = [json.dumps(n.incoming(c)).encode() for c in call_ids]
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        # Every notification twice, all at once: the copies land in the same batches.
        responses = await asyncio.gather(
            *(http.post(ingress.hook, content=body) for body in bodies + bodies)
        )
    assert [r.status_code for r in responses] == [204] * 80
    enqueued = [m.args[0]["content"]["callId"] for m in queued(rdb, "calls")]
    assert sorted(enqueued) == sorted(call_ids)


def test_accepted_notifications_log_nothing_at_info(
    ingress: Ingress, client: httpx.Client, rdb: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    for i in range(3):
        assert client.post(ingress.hook, json=n.incoming(f"call-quiet-{i}")).status_code == 204
    assert len(queued(rdb, "calls")) == 3
    assert [r.getMessage() for r in caplog.records if r.name.startswith("worker.")] == []
