"""Service functions behind the call tasks: what a node does with a notification.

The Celery tasks in :mod:`tasks.calls` parse the notification and call one
function here with the process's resources (:func:`resources`).

Today these functions record what happened in the store, idempotently
(Celery delivers at least once):

- :func:`handle_incoming` records the new call and its ``incoming`` event.
  **Answering plugs in here**: after the call is recorded, the node will
  decide (``worker.node.decide``), answer on its media loop, claim the call
  in :mod:`worker.ownership` and mark it answered. None of that is done yet;
  the call stays in state ``incoming`` until its ``ended`` arrives.
- :func:`handle_call_event` records a follow-up event. ``ended`` ends the
  call (creating the record if the ``incoming`` was never handled); events of
  unknown type are kept for a call the store knows and skipped otherwise.
  **Hang-up of a live session plugs in here** for the owning node.

Resources are built lazily, once per process, from ``Settings.from_env()``
(never at import time, never before a fork). A node that builds its own
(with its media loop) installs them with :func:`install`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from worker.config import Settings
from worker.goto.events import (
    EndedNotification,
    IncomingNotification,
    UnknownNotification,
    dump_notification,
)
from worker.logs import call_id_var
from worker.store import CallRecord, NewCall, Store

if TYPE_CHECKING:
    from worker.node.runtime import Node

log = logging.getLogger(__name__)

# The outcome of a call that ended after a node decided not to answer it.
DECIDED_OUTCOMES = {"voicemail": "voicemail", "decline": "declined", "forward": "forwarded"}


@dataclass(frozen=True)
class Resources:
    """What the service functions of one process share."""

    settings: Settings
    store: Store
    node: Node | None = None
    """The node runtime (media loop, live calls), installed by ``callworker worker``."""


_lock = threading.Lock()
_resources: Resources | None = None


def resources() -> Resources:
    """This process's resources, built from the environment on first use."""
    global _resources
    with _lock:
        if _resources is None:
            settings = Settings.from_env()
            _resources = Resources(settings, Store(settings.effective_database_url))
        return _resources


def install(new: Resources | None) -> None:
    """Use ``new`` as this process's resources (None: build from the environment next time)."""
    global _resources
    with _lock:
        _resources = new


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def handle_incoming(
    notification: IncomingNotification, *, store: Store, node: str, runtime: Node | None = None
) -> CallRecord:
    """Record a new inbound call (idempotent), then let the node ``runtime`` act on it.

    A call already past ``incoming`` (a redelivered task) is not acted on again.
    """
    content = notification.content
    token = call_id_var.set(content.call_id)
    try:
        at = _aware(notification.timestamp)
        record = store.upsert_call(
            NewCall(
                goto_call_id=content.call_id,
                direction="inbound",
                created_at=at,
                caller_number=content.number,
                caller_name=content.name,
                extension=content.extension_number,
                organization_id=content.organization_id,
                session_id=content.session_id,
            )
        )
        store.add_event(
            content.call_id,
            type=notification.type,
            timestamp=at,
            payload=dump_notification(notification),
            node=node,
        )
        log.info(
            "incoming call from %s to extension %s recorded on %s (state %s)",
            content.number or "unknown number",
            content.extension_number,
            node,
            record.state,
        )
        if runtime is not None and record.state == "incoming":
            runtime.take_incoming(notification)
            detail = store.get_call(content.call_id)
            if detail is not None:
                record = detail.call
        return record
    finally:
        call_id_var.reset(token)


def handle_call_event(
    notification: EndedNotification | UnknownNotification,
    *,
    store: Store,
    node: str,
    runtime: Node | None = None,
) -> CallRecord | None:
    """Record a follow-up event of a call; None when it names no call the store knows.

    When the node ``runtime`` hosts the call live, the event goes to the live
    call, which writes the call's end itself when it finishes.
    """
    call_id = (
        notification.content.call_id
        if isinstance(notification, EndedNotification)
        else notification.call_id
    )
    if call_id is None:
        log.warning("%s notification names no call; nothing to do", notification.type)
        return None
    token = call_id_var.set(call_id)
    try:
        at = _aware(notification.timestamp)
        record: CallRecord | None
        live = runtime is not None and runtime.on_call_event(notification)
        if live:
            detail = store.get_call(call_id)
            record = detail.call if detail is not None else None
        elif isinstance(notification, EndedNotification):
            content = notification.content
            known = store.get_call(call_id)
            decided = (known.call.flow or {}).get("decision") if known is not None else None
            record = store.mark_ended(
                call_id,
                # A call the node sent away ends as what it was sent to, whichever of
                # this `ended` and the node's own write comes first.
                outcome=DECIDED_OUTCOMES.get(str(decided)),
                reason_code=content.reason_code or None,
                at=at,
                if_missing=NewCall(
                    goto_call_id=call_id,
                    direction="inbound",
                    created_at=at,
                    extension=content.extension_number,
                    organization_id=content.organization_id,
                    session_id=content.session_id,
                ),
            )
        else:
            detail = store.get_call(call_id)
            if detail is None:
                log.info("%s event for a call the store does not know; skipped", notification.type)
                return None
            record = detail.call
        store.add_event(
            call_id,
            type=notification.type,
            timestamp=at,
            payload=dump_notification(notification),
            node=node,
        )
        log.info("%s event recorded on %s", notification.type, node)
        return record
    finally:
        call_id_var.reset(token)
