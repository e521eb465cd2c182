"""Logging for callworker processes: configured once, by the application, at start.

Libraries only call ``logging.getLogger(__name__)``. ``configure()`` installs
one handler on the root logger with a filter that adds the current
``call_id`` (a context variable set by whoever handles a call) to each record.
"""

from __future__ import annotations

import contextvars
import logging
import sys

call_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [call=%(call_id)s] %(message)s"


class CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = call_id_var.get()
        return True


def configure(level: str = "INFO") -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if getattr(handler, "_callworker", False):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(CallIdFilter())
    handler._callworker = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # httpx logs full request URLs at INFO; webhook URLs carry a secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
