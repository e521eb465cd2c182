"""Celery task messages, encoded the way kombu's Redis transport stores them.

The ingress puts a task on a queue by pushing one JSON document onto the
Redis list named after the queue, which is what ``celery_app.send_task(name,
args=(notification,), queue=queue, expires=seconds)`` does through kombu, but
without kombu's per-publish setup (a new Redis client object, a channel, a
producer, Celery's router and its option merging), which cost the ingress
about 0.4 ms of CPU per message. The document is:

- the envelope kombu writes: ``body`` (base64), ``content-type``
  ``application/json``, ``content-encoding`` ``utf-8``, ``headers`` and
  ``properties`` (``delivery_info`` with the default exchange ``""`` and the
  queue as routing key, a ``delivery_tag``, priority 0, ``delivery_mode`` 2,
  ``expiration`` in ms);
- Celery's task protocol 2 in the headers (``task``, ``id``, ``expires`` as
  an ISO 8601 UTC time, ``argsrepr`` and the rest, as
  :meth:`celery.app.amqp.AMQP.as_task_v2` sets them) and the body
  ``[args, kwargs, embed]``.

A test compares this with what ``send_task`` writes for the same task, and
the end-to-end tests have real Celery workers consume it. Encoding is pure:
the time comes from the caller, nothing touches the network.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from datetime import datetime, timedelta
from socket import gethostname
from typing import Any

# The task's keyword arguments and "embed" part: no callbacks, chain or chord.
_KWARGS_AND_EMBED = b'{}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}'


def task_body(argument_json: bytes) -> bytes:
    """Celery's protocol-2 body for a task with one positional argument, given as JSON."""
    return b"[[" + argument_json + b"], " + _KWARGS_AND_EMBED + b"]"


def _fields(fields: dict[str, Any]) -> str:
    """``"key": value, ...`` for a template, with the slots kept as they are."""
    return ", ".join(f"{json.dumps(k)}: {_value(v)}" for k, v in fields.items())


def _value(value: Any) -> str:
    if isinstance(value, _Slot):
        return value
    if isinstance(value, dict):
        return "{" + _fields(value) + "}"
    return json.dumps(value)


class _Slot(str):
    """A named template slot, ``%(name)s``, filled with already-encoded JSON."""

    def __new__(cls, name: str) -> _Slot:
        return super().__new__(cls, f"%({name})s")


# The envelope, encoded once; its slots are filled per message with JSON values (strings
# quoted and escaped by json.dumps, or ids, times and base64, which need no escaping).
_HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": _Slot("task"),
    "id": _Slot("id"),
    "shadow": None,
    "eta": None,
    "expires": _Slot("expires"),
    "group": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [None, None],
    "root_id": _Slot("id"),
    "parent_id": None,
    "argsrepr": _Slot("argsrepr"),
    "kwargsrepr": "{}",
    "origin": _Slot("origin"),
    "ignore_result": None,
    "replaced_task_nesting": 0,
    "stamped_headers": None,
    "stamps": {},
}
_PROPERTIES: dict[str, Any] = {
    "correlation_id": _Slot("id"),
    "reply_to": _Slot("reply_to"),
    "argsrepr": _Slot("argsrepr"),
    "kwargsrepr": "{}",
    "delivery_mode": 2,
    "expiration": _Slot("expiration"),
    "delivery_info": {"exchange": "", "routing_key": _Slot("queue")},
    "priority": 0,
    "body_encoding": "base64",
    "delivery_tag": _Slot("delivery_tag"),
}
_ENVELOPE = (
    '{"body": %(body)s, "content-encoding": "utf-8", "content-type": "application/json", '
    f'"headers": {{{_fields(_HEADERS)}}}, "properties": {{{_fields(_PROPERTIES)}}}}}'
)


def new_id() -> str:
    """A random (version 4) UUID as text, like Celery's task ids."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class IdSource:
    """Unique ids in UUID form: a random one per source, its last 48 bits a counter.

    Cheaper than a fresh random UUID per message (no system call), and as unique
    as needed for task ids and delivery tags: 74 random bits per process.
    """

    def __init__(self) -> None:
        self._stem = new_id()[:24]
        self._count = itertools.count(int.from_bytes(os.urandom(4)))

    def __call__(self) -> str:
        return f"{self._stem}{next(self._count) & 0xFFFFFFFFFFFF:012x}"


class MessageEncoder:
    """Build task messages for one process (``origin`` and ``reply_to`` are per process)."""

    def __init__(self, origin: str | None = None, reply_to: str | None = None) -> None:
        # What Celery's anon_nodename() gives a process that is not a worker.
        self.origin = json.dumps(origin or f"gen{os.getpid()}@{gethostname()}")
        self.reply_to = json.dumps(reply_to or new_id())
        self.new_id = IdSource()
        self._quoted: dict[str, str] = {}

    def _quote(self, name: str) -> str:
        """``json.dumps(name)`` for task and queue names, which repeat: remembered."""
        quoted = self._quoted.get(name)
        if quoted is None:
            if len(self._quoted) >= 1024:
                self._quoted.clear()
            quoted = self._quoted[name] = json.dumps(name)
        return quoted

    def encode(
        self,
        *,
        task: str,
        argument_json: bytes,
        queue: str,
        expires: float,
        now: datetime,
        argsrepr: str,
    ) -> bytes:
        """The message for ``task(<argument>)`` on ``queue``, expiring ``expires`` s after ``now``.

        ``argument_json`` is the task's single argument as UTF-8 JSON text;
        ``now`` must be timezone-aware (the ingress's clock is UTC).
        """
        summary = json.dumps(argsrepr)
        body = base64.b64encode(task_body(argument_json)).decode("ascii")
        text = _ENVELOPE % {
            "body": f'"{body}"',
            "task": self._quote(task),
            "id": f'"{self.new_id()}"',
            "expires": f'"{(now + timedelta(seconds=expires)).isoformat()}"',
            "argsrepr": summary,
            "origin": self.origin,
            "reply_to": self.reply_to,
            "expiration": f'"{int(expires * 1000)}"',
            "queue": self._quote(queue),
            "delivery_tag": f'"{self.new_id()}"',
        }
        return text.encode()
