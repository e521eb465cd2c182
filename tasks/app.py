"""The Celery app: one factory, one configuration, for every process.

``create_celery(settings)`` builds the app the worker nodes consume with; the
ingress writes the same protocol-2 messages itself (worker/ingress/message.py)
and reads only ``celery_config`` from here. ``celery -A tasks.app worker ...`` finds the
module-level ``app``, which is built on first access (PEP 562
``__getattr__``) from ``Settings.from_env()``, so importing this module reads
no environment and opens no connection. The app holds the broker URL; no
other client or credential is a module global.

Configuration and why:

- JSON only, no result backend: tasks take plain values (a notification
  dict) and their results are not read.
- ``task_acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1: a task is
  acked after it ran, a worker that dies mid-task has its message redelivered,
  and nothing waits in a busy node's prefetch buffer. Safe because every task
  is short and idempotent.
- ``visibility_timeout`` 3600 s: Redis redelivers an unacked message after
  it. Task retries are bounded (``MAX_RETRIES`` with back-off up to
  ``RETRY_BACKOFF_MAX`` s), far below it, so a retry countdown never makes the
  broker redeliver. ``expires`` on every message (set by the ingress) keeps a
  backlog or a redelivery from acting on a dead call.
- ``worker_direct``: every node also consumes its own queue,
  ``celery.utils.nodenames.worker_direct(node)`` (``<node>.dq2``), where the
  ingress sends follow-up events of the calls that node owns.
- ``task_time_limit`` applies to the prefork pool only. Worker nodes run the
  threads pool, which does not enforce time limits: a call's maximum
  duration is enforced on the media loop instead.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from worker.config import ConfigError, Settings
from worker.ingress.routing import CALLS_QUEUE, ON_CALL_EVENT, ON_INCOMING

VISIBILITY_TIMEOUT = 3600
TASK_TIME_LIMIT = 120
MAX_RETRIES = 3
RETRY_BACKOFF_MAX = 30
TASK_NAMES = (ON_INCOMING, ON_CALL_EVENT)


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings every callworker process uses."""
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 4,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        },
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.2,
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "event_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_direct": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_default_queue": CALLS_QUEUE,
        "task_routes": {name: {"queue": CALLS_QUEUE} for name in TASK_NAMES},
        "task_time_limit": TASK_TIME_LIMIT,
        "enable_utc": True,
        "timezone": "UTC",
        "worker_hijack_root_logger": False,
    }


def create_celery(settings: Settings) -> Celery:
    """A Celery app publishing to and consuming from ``settings.redis_url``."""
    if not settings.redis_url:
        raise ConfigError("CALLWORKER_REDIS_URL", "is required: the Celery broker's Redis URL")
    app = Celery("callworker", include=["tasks.calls"])
    app.conf.update(celery_config(settings))
    return app


_lock = threading.Lock()
_app: Celery | None = None


def get_app() -> Celery:
    """The process's Celery app for the ``celery`` command, built once from the environment."""
    global _app
    with _lock:
        if _app is None:
            from celery import signals

            settings = Settings.from_env()
            _app = create_celery(settings)

            def setup_logging(**_: Any) -> None:
                from worker import logs

                logs.configure(settings.log_level)

            # Our log format (with call ids) instead of Celery's, configured once per process.
            signals.setup_logging.connect(setup_logging, weak=False)
        return _app


def __getattr__(name: str) -> Any:
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
