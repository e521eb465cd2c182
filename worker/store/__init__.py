"""The SQL store (SQLAlchemy): calls, their events and recordings.

SQLite file in the data folder by default (``Settings.effective_database_url``),
Postgres by URL. ``Store(url)`` makes or migrates the schema when it opens.

Errors::

    StoreError
    ├── SchemaError     the database's schema is newer than this code
    └── CallNotFound    no call with this GoTo call id
"""

from worker.store.schema import CallNotFound, SchemaError, StoreError
from worker.store.store import (
    ANSWERED,
    ENDED,
    FAILED,
    INCOMING,
    CallDetail,
    CallRecord,
    EventRecord,
    NewCall,
    RecordingRecord,
    Store,
)

__all__ = [
    "ANSWERED",
    "ENDED",
    "FAILED",
    "INCOMING",
    "CallDetail",
    "CallNotFound",
    "CallRecord",
    "EventRecord",
    "NewCall",
    "RecordingRecord",
    "SchemaError",
    "Store",
    "StoreError",
]
