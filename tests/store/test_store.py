"""The SQL store on a real SQLite file: idempotency, atomicity, migrations."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import StatementError

from worker.config import Settings
from worker.store import CallNotFound, NewCall, SchemaError, Store
from worker.store.schema import add_column_if_missing, migrate

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def new_call(call_id: str, at: datetime = T0, **extra: str) -> NewCall:
    return NewCall(call_id, "inbound", at, caller_number="+15550001", extension="0523", **extra)


@pytest.fixture
def store(data_dir: Path) -> Store:
    return Store(Settings(data_dir=data_dir).effective_database_url)


def test_default_database_is_a_sqlite_file_in_the_data_folder_with_wal(data_dir: Path) -> None:
    store = Store(Settings(data_dir=data_dir).effective_database_url)
    assert (data_dir / "callworker.db").exists()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_upsert_is_idempotent(store: Store) -> None:
    first = store.upsert_call(new_call("c1"))
    again = store.upsert_call(new_call("c1", at=T0 + timedelta(hours=1), caller_name="Other"))
    assert again == first
    assert first.state == "incoming" and first.created_at == T0
    assert len(store.list_calls()) == 1


def test_concurrent_upserts_of_one_call_make_one_row(store: Store) -> None:
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def upsert() -> None:
        barrier.wait()
        try:
            store.upsert_call(new_call("same"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upsert) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [c.goto_call_id for c in store.list_calls()] == ["same"]


def test_the_first_end_wins(store: Store) -> None:
    store.upsert_call(new_call("c1"))
    answered = store.mark_answered("c1", node="node-a@h", at=T0 + timedelta(seconds=2))
    assert (answered.state, answered.node) == ("answered", "node-a@h")
    ended = store.mark_ended("c1", reason_code="BYE", at=T0 + timedelta(seconds=60))
    assert (ended.state, ended.outcome, ended.reason_code) == ("ended", "completed", "BYE")
    again = store.mark_ended("c1", outcome="voicemail", reason_code="X", at=T0 + timedelta(hours=1))
    assert again == ended
    assert store.mark_failed("c1", reason="node died") == ended
    assert store.mark_answered("c1", node="node-b@h") == ended


def test_failed_is_final_too(store: Store) -> None:
    store.upsert_call(new_call("c1"))
    failed = store.mark_failed("c1", reason="owner node-a@h stopped its heartbeat")
    assert (failed.state, failed.outcome) == ("failed", "failed")
    assert store.mark_ended("c1", reason_code="BYE") == failed


def test_ended_for_an_unknown_call_records_it(store: Store) -> None:
    with pytest.raises(CallNotFound, match="call ghost is not in the store"):
        store.mark_ended("ghost")
    record = store.mark_ended("ghost", reason_code="BYE", at=T0, if_missing=new_call("ghost"))
    assert (record.state, record.outcome, record.ended_at) == ("ended", "missed", T0)


def test_events_are_kept_once(store: Store) -> None:
    store.upsert_call(new_call("c1"))
    payload = {"type": "ended", "content": {"callId": "c1"}}
    assert store.add_event("c1", type="ended", timestamp=T0, payload=payload, node="n@h")
    assert not store.add_event("c1", type="ended", timestamp=T0, payload=payload, node="n@h")
    assert store.add_event("c1", type="hold", timestamp=T0, payload={}, node="n@h")
    detail = store.get_call("c1")
    assert detail is not None
    assert [(e.type, e.timestamp, e.payload) for e in detail.events] == [
        ("ended", T0, payload),
        ("hold", T0, {}),
    ]


def test_recordings_are_kept_per_path(store: Store) -> None:
    store.upsert_call(new_call("c1"))
    store.add_recording("c1", path="rec/c1.wav", duration_seconds=1.0, size_bytes=100)
    store.add_recording("c1", path="rec/c1.wav", duration_seconds=4.5, size_bytes=400)
    detail = store.get_call("c1")
    assert detail is not None
    [recording] = detail.recordings
    assert (recording.path, recording.duration_seconds, recording.size_bytes) == (
        "rec/c1.wav",
        4.5,
        400,
    )
    assert store.get_call("nope") is None


def test_no_half_written_records_when_a_transaction_fails(store: Store) -> None:
    naive = datetime(2026, 3, 2, 9, 31)
    # The call is inserted first, then setting a naive end time fails: nothing stays.
    with pytest.raises(StatementError, match="naive datetime"):
        store.mark_ended("half", at=naive, if_missing=new_call("half"))
    assert store.get_call("half") is None
    assert store.list_calls() == []


def test_list_calls_filters_newest_first(store: Store) -> None:
    for i in range(5):
        store.upsert_call(new_call(f"c{i}", at=T0 + timedelta(minutes=i)))
    store.mark_ended("c1", outcome="voicemail")
    store.mark_ended("c3")
    assert [c.goto_call_id for c in store.list_calls()] == ["c4", "c3", "c2", "c1", "c0"]
    assert [c.goto_call_id for c in store.list_calls(state="ended")] == ["c3", "c1"]
    assert [c.goto_call_id for c in store.list_calls(outcome="voicemail")] == ["c1"]
    window = store.list_calls(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert [c.goto_call_id for c in window] == ["c2", "c1"]
    assert [c.goto_call_id for c in store.list_calls(limit=2, offset=1)] == ["c3", "c2"]
    assert store.list_calls(extension="9999") == []


def test_opening_twice_and_from_many_threads_is_harmless(data_dir: Path) -> None:
    url = f"sqlite:///{data_dir / 'many.db'}"
    versions: list[int] = []

    def open_store() -> None:
        versions.append(Store(url).schema_version)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert versions == [1, 1, 1, 1]
    store = Store(url)
    store.upsert_call(new_call("kept"))
    assert Store(url).get_call("kept") is not None


def test_additive_migrations_apply_once(store: Store) -> None:
    applied: list[int] = []

    def add_note(conn: Connection) -> None:
        applied.append(2)
        add_column_if_missing(conn, "calls", "note", "TEXT")

    migrations = [(2, "calls.note", add_note)]
    assert migrate(store.engine, migrations) == 2
    assert migrate(store.engine, migrations) == 2
    assert applied == [2]
    with store.engine.connect() as conn:
        assert "note" in {c["name"] for c in inspect(conn).get_columns("calls")}
        assert not add_column_if_missing(conn, "calls", "note", "TEXT")
    # This code only knows version 1: a database at version 2 is refused, by name.
    with pytest.raises(SchemaError, match="version 2, newer than this callworker"):
        Store(str(store.engine.url))


def test_foreign_keys_cascade(store: Store) -> None:
    store.upsert_call(new_call("c1"))
    store.add_event("c1", type="incoming", timestamp=T0, payload={})
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM calls WHERE goto_call_id = 'c1'"))
        assert conn.execute(text("SELECT count(*) FROM call_events")).scalar() == 0
