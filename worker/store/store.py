"""The store: calls, their events and recordings, behind a small typed API.

``Store(url)`` connects and makes or migrates the schema. Every method is one
transaction: it commits whole or not at all. Writes are idempotent, because
Celery delivers at least once and GoTo may repeat a notification:

- :meth:`Store.upsert_call` on a known call id changes nothing;
- :meth:`Store.mark_ended` / :meth:`Store.mark_failed` on a call already ended
  or failed change nothing (the first outcome stands);
- :meth:`Store.add_event` keeps one row per (call, type, timestamp);
- :meth:`Store.add_recording` keeps one row per (call, path) and updates it.

Methods return frozen records, never live ORM objects, so callers can pass
them between threads. Errors: :class:`~worker.store.schema.StoreError` and
its subclasses, plus SQLAlchemy's own for a database that is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from worker.store.models import Call, CallEvent, Recording
from worker.store.schema import CallNotFound, make_engine, migrate, writer

Direction = Literal["inbound", "outbound"]

INCOMING = "incoming"
ANSWERED = "answered"
ENDED = "ended"
FAILED = "failed"
FINAL_STATES = frozenset({ENDED, FAILED})


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewCall:
    """What is known of a call when it first appears."""

    goto_call_id: str
    direction: Direction
    created_at: datetime
    caller_number: str = ""
    caller_name: str = ""
    called_number: str = ""
    extension: str = ""
    organization_id: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class CallRecord:
    goto_call_id: str
    direction: str
    caller_number: str
    caller_name: str
    called_number: str
    extension: str
    organization_id: str
    node: str | None
    state: str
    outcome: str | None
    reason_code: str | None
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    flow: dict[str, Any] | None
    path: dict[str, Any] | None

    @classmethod
    def of(cls, row: Call) -> CallRecord:
        return cls(
            goto_call_id=row.goto_call_id,
            direction=row.direction,
            caller_number=row.caller_number,
            caller_name=row.caller_name,
            called_number=row.called_number,
            extension=row.extension,
            organization_id=row.organization_id,
            node=row.node,
            state=row.state,
            outcome=row.outcome,
            reason_code=row.reason_code,
            created_at=row.created_at,
            answered_at=row.answered_at,
            ended_at=row.ended_at,
            flow=row.flow,
            path=row.path,
        )


@dataclass(frozen=True)
class EventRecord:
    type: str
    timestamp: datetime
    received_at: datetime
    node: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class RecordingRecord:
    path: str
    duration_seconds: float
    size_bytes: int
    format: str
    created_at: datetime


@dataclass(frozen=True)
class CallDetail:
    call: CallRecord
    events: tuple[EventRecord, ...] = field(default_factory=tuple)
    recordings: tuple[RecordingRecord, ...] = field(default_factory=tuple)


class Store:
    """The SQL store at ``url`` (SQLite file or Postgres); the schema is made on open."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(url)
        self._writer = writer(self.engine)
        self.schema_version = migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    @staticmethod
    def _find(session: Session, goto_call_id: str) -> Call | None:
        return session.scalars(select(Call).where(Call.goto_call_id == goto_call_id)).first()

    def _get(self, session: Session, goto_call_id: str) -> Call:
        row = self._find(session, goto_call_id)
        if row is None:
            raise CallNotFound(goto_call_id)
        return row

    @staticmethod
    def _insert_ignoring_duplicate(session: Session, new: NewCall) -> None:
        values: dict[str, Any] = {
            "goto_call_id": new.goto_call_id,
            "direction": new.direction,
            "caller_number": new.caller_number,
            "caller_name": new.caller_name,
            "called_number": new.called_number,
            "extension": new.extension,
            "organization_id": new.organization_id,
            "session_id": new.session_id,
            "state": INCOMING,
            "created_at": new.created_at,
        }
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            session.execute(
                sqlite.insert(Call)
                .values(values)
                .on_conflict_do_nothing(index_elements=["goto_call_id"])
            )
        elif dialect == "postgresql":
            session.execute(
                postgresql.insert(Call)
                .values(values)
                .on_conflict_do_nothing(index_elements=["goto_call_id"])
            )
        else:  # pragma: no cover - other databases are not supported targets
            try:
                with session.begin_nested():
                    session.add(Call(**values))
            except IntegrityError:
                pass

    def upsert_call(self, new: NewCall) -> CallRecord:
        """Record a call if it is new; a call already known is returned unchanged."""
        with self._write() as session:
            self._insert_ignoring_duplicate(session, new)
            return CallRecord.of(self._get(session, new.goto_call_id))

    def mark_answered(
        self, goto_call_id: str, *, node: str, at: datetime | None = None
    ) -> CallRecord:
        """The call was answered by ``node``. No change once the call ended or failed."""
        with self._write() as session:
            row = self._get(session, goto_call_id)
            if row.state == INCOMING:
                row.state = ANSWERED
                row.node = node
                row.answered_at = at or _utcnow()
            return CallRecord.of(row)

    def mark_ended(
        self,
        goto_call_id: str,
        *,
        outcome: str | None = None,
        reason_code: str | None = None,
        at: datetime | None = None,
        if_missing: NewCall | None = None,
    ) -> CallRecord:
        """The call ended. The first end wins: a second call changes nothing.

        ``outcome`` defaults to ``completed`` for an answered call and ``missed``
        otherwise. With ``if_missing``, an unknown call is first recorded from it
        (an ``ended`` can arrive for a call whose ``incoming`` was never handled).
        """
        with self._write() as session:
            if if_missing is not None:
                self._insert_ignoring_duplicate(session, if_missing)
            row = self._get(session, goto_call_id)
            if row.state not in FINAL_STATES:
                row.outcome = outcome or ("completed" if row.state == ANSWERED else "missed")
                row.state = ENDED
                row.reason_code = reason_code
                row.ended_at = at or _utcnow()
            return CallRecord.of(row)

    def mark_failed(
        self, goto_call_id: str, *, reason: str, at: datetime | None = None
    ) -> CallRecord:
        """The call failed (e.g. its node died). No change once it ended or failed."""
        with self._write() as session:
            row = self._get(session, goto_call_id)
            if row.state not in FINAL_STATES:
                row.state = FAILED
                row.outcome = FAILED
                row.reason_code = reason
                row.ended_at = at or _utcnow()
            return CallRecord.of(row)

    def set_flow(
        self,
        goto_call_id: str,
        *,
        flow: dict[str, Any] | None = None,
        path: dict[str, Any] | None = None,
    ) -> CallRecord:
        """Attach the flow that ran and the path it took (JSON) to a call."""
        with self._write() as session:
            row = self._get(session, goto_call_id)
            if flow is not None:
                row.flow = flow
            if path is not None:
                row.path = path
            return CallRecord.of(row)

    def add_event(
        self,
        goto_call_id: str,
        *,
        type: str,
        timestamp: datetime,
        payload: dict[str, Any],
        node: str | None = None,
    ) -> bool:
        """Record a notification of a call; False if this event was already recorded."""
        with self._write() as session:
            row = self._get(session, goto_call_id)
            seen = session.scalars(
                select(CallEvent.id).where(
                    CallEvent.call_id == row.id,
                    CallEvent.type == type,
                    CallEvent.timestamp == timestamp,
                )
            ).first()
            if seen is not None:
                return False
            session.add(
                CallEvent(
                    call_id=row.id,
                    type=type,
                    timestamp=timestamp,
                    received_at=_utcnow(),
                    node=node,
                    payload=payload,
                )
            )
            return True

    def add_recording(
        self,
        goto_call_id: str,
        *,
        path: str,
        duration_seconds: float,
        size_bytes: int,
        format: str = "wav",
    ) -> RecordingRecord:
        """Record (or update, by path) a recording of a call."""
        with self._write() as session:
            row = self._get(session, goto_call_id)
            recording = session.scalars(
                select(Recording).where(Recording.call_id == row.id, Recording.path == path)
            ).first()
            if recording is None:
                recording = Recording(call_id=row.id, path=path, created_at=_utcnow())
                session.add(recording)
            recording.duration_seconds = duration_seconds
            recording.size_bytes = size_bytes
            recording.format = format
            session.flush()
            return _recording(recording)

    def get_call(self, goto_call_id: str) -> CallDetail | None:
        """A call with its events and recordings, or None."""
        with self._read() as session:
            row = session.scalars(
                select(Call)
                .where(Call.goto_call_id == goto_call_id)
                .options(selectinload(Call.events), selectinload(Call.recordings))
            ).first()
            if row is None:
                return None
            return CallDetail(
                call=CallRecord.of(row),
                events=tuple(
                    EventRecord(e.type, e.timestamp, e.received_at, e.node, e.payload)
                    for e in row.events
                ),
                recordings=tuple(_recording(r) for r in row.recordings),
            )

    def list_calls(
        self,
        *,
        state: str | None = None,
        outcome: str | None = None,
        extension: str | None = None,
        node: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[CallRecord]:
        """Calls matching every given filter, newest first."""
        query = select(Call)
        if state is not None:
            query = query.where(Call.state == state)
        if outcome is not None:
            query = query.where(Call.outcome == outcome)
        if extension is not None:
            query = query.where(Call.extension == extension)
        if node is not None:
            query = query.where(Call.node == node)
        if since is not None:
            query = query.where(Call.created_at >= since)
        if until is not None:
            query = query.where(Call.created_at < until)
        query = query.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit).offset(offset)
        with self._read() as session:
            return [CallRecord.of(row) for row in session.scalars(query)]


def _recording(row: Recording) -> RecordingRecord:
    return RecordingRecord(
        path=row.path,
        duration_seconds=row.duration_seconds,
        size_bytes=row.size_bytes,
        format=row.format,
        created_at=row.created_at,
    )
