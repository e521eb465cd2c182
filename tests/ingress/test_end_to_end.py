"""Webhook -> ingress -> Redis -> real Celery worker subprocesses -> SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import redis

from tests.helpers import wait_until
from tests.ingress import notifications as n
from tests.ingress.conftest import Ingress
from tests.tasks.worker_process import celery_worker
from worker.ownership import Ownership
from worker.store import CallDetail, Store


def _detail(store: Store, call_id: str, events: int) -> CallDetail | None:
    detail = store.get_call(call_id)
    return detail if detail is not None and len(detail.events) >= events else None


def test_an_incoming_webhook_is_recorded_by_a_real_worker(
    ingress: Ingress, client: httpx.Client, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    store = Store(ingress.settings.effective_database_url)
    with celery_worker(redis_url, data_dir, tmp_path / "logs", name="solo") as worker:
        assert client.post(ingress.hook, json=n.incoming("e2e-1")).status_code == 204
        detail = wait_until(
            lambda: _detail(store, "e2e-1", 1), timeout=30, what=f"the call\n{worker.tail()}"
        )
        assert detail.call.state == "incoming"
        assert (detail.call.caller_number, detail.call.caller_name) == ("+5143334444", "Bob")
        assert detail.call.extension == n.EXTENSION
        assert [(e.type, e.node) for e in detail.events] == [("incoming", worker.node)]

        assert client.post(ingress.hook, json=n.ended("e2e-1")).status_code == 204
        detail = wait_until(
            lambda: _detail(store, "e2e-1", 2), timeout=30, what=f"the end\n{worker.tail()}"
        )
        assert (detail.call.state, detail.call.outcome, detail.call.reason_code) == (
            "ended",
            "missed",
            "BYE",
        )
    store.close()


def test_a_real_worker_reads_the_notification_exactly_as_sent(
    ingress: Ingress, client: httpx.Client, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    store = Store(ingress.settings.effective_database_url)
    body = n.incoming("e2e-raw", number="+15550002222")
    body["content"]["name"] = 'Zoë "Ünïcode" \\ Caller'
    body["ttl"] = 30  # a number this time; GoTo sends strings too
    raw = json.dumps(body, ensure_ascii=False, indent=2).encode()
    with celery_worker(redis_url, data_dir, tmp_path / "logs", name="raw") as worker:
        assert client.post(ingress.hook, content=raw).status_code == 204
        detail = wait_until(
            lambda: _detail(store, "e2e-raw", 1), timeout=30, what=f"the call\n{worker.tail()}"
        )
    assert detail.call.caller_name == 'Zoë "Ünïcode" \\ Caller'
    assert detail.call.caller_number == "+15550002222"
    assert [(e.type, e.node) for e in detail.events] == [("incoming", worker.node)]
    store.close()


def test_each_follow_up_event_reaches_the_node_that_owns_the_call(
    ingress: Ingress, client: httpx.Client, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    store = Store(ingress.settings.effective_database_url)
    ownership = Ownership(redis.Redis.from_url(redis_url))
    logs = tmp_path / "logs"
    with (
        celery_worker(redis_url, data_dir, logs, name="node-a") as node_a,
        celery_worker(redis_url, data_dir, logs, name="node-b") as node_b,
    ):
        nodes = {"a": node_a.node, "b": node_b.node}
        owners = {f"{name}-{i}": node for name, node in nodes.items() for i in range(3)}
        for call_id in owners:
            assert client.post(ingress.hook, json=n.incoming(call_id)).status_code == 204
        for call_id in owners:
            wait_until(lambda c=call_id: _detail(store, c, 1), timeout=30, what=f"call {call_id}")
        # What answering will do: the node that answers claims the call.
        for call_id, node in owners.items():
            assert ownership.claim(call_id, node, ttl=120)
        for call_id in owners:
            hold = n.other("hold", call_id=call_id)
            assert client.post(ingress.hook, json=hold).status_code == 204
            assert client.post(ingress.hook, json=n.ended(call_id)).status_code == 204
        for call_id, node in owners.items():
            detail = wait_until(
                lambda c=call_id: _detail(store, c, 3),
                timeout=30,
                what=f"events of {call_id}\n{node_a.tail()}\n{node_b.tail()}",
            )
            handled = {e.type: e.node for e in detail.events}
            assert handled["hold"] == node, f"{call_id}: hold handled on {handled['hold']}"
            assert handled["ended"] == node, f"{call_id}: ended handled on {handled['ended']}"
            assert detail.call.state == "ended"
    ownership.redis.close()
    store.close()
