"""The ingress's own task messages against the ones Celery's ``send_task`` writes to Redis."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from celery.utils.nodenames import worker_direct

from tasks.app import create_celery
from tests.ingress import notifications as n
from worker.config import Secret, Settings
from worker.ingress.message import IdSource, MessageEncoder, new_id, task_body

# Fields that differ between any two messages: ids, times, and the sending process.
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "expires", "origin", "reply_to"}


def _normalized(raw: bytes) -> dict[str, Any]:
    envelope = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    for part in ("headers", "properties"):
        for name in PER_MESSAGE & envelope[part].keys():
            envelope[part][name] = type(envelope[part][name]).__name__
    return envelope


@pytest.mark.parametrize("node", [None, "node-a@host"])
def test_our_message_is_the_one_send_task_writes(redis_url: str, node: str | None) -> None:
    settings = Settings(redis_url=redis_url, webhook_secret=Secret("x" * 20))
    notification = n.incoming("call-compare")
    queue = worker_direct(node).name if node else "calls"
    summary = "('incoming' notification, call call-compare)"
    app = create_celery(settings)
    app.send_task(
        "tasks.calls.on_incoming",
        args=(notification,),
        queue=worker_direct(node) if node else "calls",
        expires=25.5,
        argsrepr=summary,
        kwargsrepr="{}",
        declare=[],
    )
    app.close()
    client = redis.Redis.from_url(redis_url)
    [celery_raw] = client.lrange(queue, 0, -1)
    client.close()

    now = datetime.now(UTC)
    ours_raw = MessageEncoder().encode(
        task="tasks.calls.on_incoming",
        argument_json=json.dumps(notification).encode(),
        queue=queue,
        expires=25.5,
        now=now,
        argsrepr=summary,
    )
    assert _normalized(ours_raw) == _normalized(celery_raw)
    ours, theirs = json.loads(ours_raw), json.loads(celery_raw)
    assert (
        ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    )
    assert ours["properties"]["delivery_tag"] != ours["headers"]["id"]
    expires = datetime.fromisoformat(ours["headers"]["expires"])
    assert expires.utcoffset() is not None
    assert (expires - now).total_seconds() == pytest.approx(25.5)
    their_expires = datetime.fromisoformat(theirs["headers"]["expires"])
    assert abs((their_expires - expires).total_seconds()) < 5


def test_the_argument_is_embedded_as_given() -> None:
    text = b'{"name": "Zo\\u00eb \\"Q\\"", "ttl": "30", "extra": [1, 2.5, null]}'
    body = json.loads(task_body(text))
    assert body == [
        [json.loads(text)],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_names_that_need_escaping_stay_valid_json() -> None:
    message = MessageEncoder(origin='gen1@"host"').encode(
        task="tasks.calls.on_call_event",
        argument_json=b"{}",
        queue='odd"node\\@h.dq2',
        expires=1.0,
        now=datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        argsrepr="('hold' notification, call \"q\"\n)",
    )
    envelope = json.loads(message)
    assert envelope["properties"]["delivery_info"]["routing_key"] == 'odd"node\\@h.dq2'
    assert envelope["headers"]["argsrepr"] == "('hold' notification, call \"q\"\n)"
    assert envelope["headers"]["origin"] == 'gen1@"host"'
    assert envelope["headers"]["expires"] == "2026-03-02T12:00:01+00:00"
    assert envelope["properties"]["expiration"] == "1000"


def test_ids_look_like_uuid4_and_do_not_repeat() -> None:
    ids = IdSource()
    made = [ids() for _ in range(2000)] + [new_id() for _ in range(2000)]
    assert len(set(made)) == len(made)
    assert {uuid.UUID(value).version for value in made} == {4}
    assert all(str(uuid.UUID(value)) == value for value in made)
