"""The call tasks in a real Celery worker subprocess, published by name as the ingress does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks.app import create_celery
from tests.helpers import wait_until
from tests.ingress import notifications as n
from tests.tasks.worker_process import celery_worker
from worker.config import Settings
from worker.store import Store

ON_INCOMING = "tasks.calls.on_incoming"
ON_CALL_EVENT = "tasks.calls.on_call_event"


def test_bad_and_expired_messages_are_dropped_good_ones_recorded(
    redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url, data_dir=data_dir)
    celery = create_celery(settings)
    store = Store(settings.effective_database_url)
    past = datetime.now(UTC) - timedelta(seconds=5)
    celery.send_task(ON_INCOMING, args=({"type": "incoming", "content": {}},))
    celery.send_task(ON_INCOMING, args=(n.incoming("expired"),), expires=past)
    celery.send_task(ON_CALL_EVENT, args=(n.other("hold", call_id="unknown-call"),))
    celery.send_task(ON_CALL_EVENT, args=(n.ended("never-seen"),))
    celery.send_task(ON_INCOMING, args=(n.incoming("fresh"),), expires=30)
    with celery_worker(redis_url, data_dir, tmp_path / "logs") as worker:
        wait_until(
            lambda: store.get_call("fresh") and store.get_call("never-seen"),
            timeout=30,
            what=f"the good messages to be handled\n{worker.tail()}",
        )
        wait_until(
            lambda: "does not know; skipped" in worker.log(),
            timeout=30,
            what=f"the unknown call's event to be skipped\n{worker.tail()}",
        )
        log = worker.log()
    assert store.get_call("expired") is None
    assert "on_incoming dropped a notification that does not parse: source:" in log
    never_seen = store.get_call("never-seen")
    assert never_seen is not None
    assert (never_seen.call.state, never_seen.call.outcome) == ("ended", "missed")
    assert store.get_call("unknown-call") is None
    assert {c.goto_call_id for c in store.list_calls()} == {"never-seen", "fresh"}
    celery.close()
    store.close()


def test_a_store_that_cannot_be_opened_is_retried_until_it_can(
    redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url, data_dir=data_dir)
    database = data_dir / "callworker.db"
    database.mkdir()  # SQLite cannot open a folder: OperationalError, a retryable error
    celery = create_celery(settings)
    with celery_worker(redis_url, data_dir, tmp_path / "logs") as worker:
        celery.send_task(ON_INCOMING, args=(n.incoming("retried"),), expires=60)
        wait_until(
            lambda: "Retry in" in worker.log(),
            timeout=30,
            what=f"a retry\n{worker.tail()}",
        )
        database.rmdir()
        store = Store(settings.effective_database_url)
        wait_until(
            lambda: store.get_call("retried"),
            timeout=30,
            what=f"the retried task to succeed\n{worker.tail()}",
        )
    celery.close()
    store.close()
