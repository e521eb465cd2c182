"""The SQL schema of the store: calls, their events and their recordings.

Typed SQLAlchemy 2 ORM models. Timestamps are stored as UTC and always come
back timezone-aware (SQLite keeps no offset, so :class:`UTCDateTime` adds it).
``SCHEMA_VERSION`` is the version these models describe; see
:mod:`worker.store.schema` for how an older database is brought up to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 1


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing to store a naive datetime {value.isoformat()}: add a tz")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class SchemaVersion(Base):
    """One row: the schema version the database is at."""

    __tablename__ = "schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    goto_call_id: Mapped[str] = mapped_column(String(200), unique=True)
    direction: Mapped[str] = mapped_column(String(16))
    caller_number: Mapped[str] = mapped_column(String(64), default="")
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    called_number: Mapped[str] = mapped_column(String(64), default="")
    extension: Mapped[str] = mapped_column(String(32), default="")
    organization_id: Mapped[str] = mapped_column(String(200), default="")
    session_id: Mapped[str] = mapped_column(Text, default="")
    node: Mapped[str | None] = mapped_column(String(200), default=None)
    state: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    reason_code: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    flow: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    path: Mapped[dict[str, Any] | None] = mapped_column(default=None)

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="CallEvent.id"
    )
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="Recording.id"
    )

    __table_args__ = (
        Index("ix_calls_created_at", "created_at"),
        Index("ix_calls_state", "state"),
    )


class CallEvent(Base):
    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
    node: Mapped[str | None] = mapped_column(String(200), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column()

    call: Mapped[Call] = relationship(back_populates="events")

    __table_args__ = (UniqueConstraint("call_id", "type", "timestamp", name="uq_call_event"),)


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    format: Mapped[str] = mapped_column(String(16), default="wav")
    created_at: Mapped[datetime] = mapped_column()

    call: Mapped[Call] = relationship(back_populates="recordings")

    __table_args__ = (UniqueConstraint("call_id", "path", name="uq_recording_path"),)
