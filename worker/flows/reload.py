"""Reloading flows while calls run: a holder of the current FlowSet.

::

    flows = FlowReloader("examples/attendant/flows")   # loads now; FlowError if invalid
    flow_set = flows.current                           # hand this one set to a new call
    flows.reload()                                     # on SIGHUP: True if a new set is in use
    task = asyncio.create_task(flows.watch(stop))      # or: reload when a file changes

A :class:`~worker.flows.model.FlowSet` never changes, so a call that started
on one finishes on it; :attr:`FlowReloader.current` only changes for the calls
that start afterwards. A reload that finds a mistake keeps the previous set,
logs the error and keeps it in :attr:`FlowReloader.last_error` (the message
names the file, line and value). A prompt folder named by path is read afresh
on each reload, so rebuilt prompts are picked up; a
:class:`~worker.media.prompts.PromptLibrary` object is reused as it is.

:meth:`reload` may be called from any thread (a signal handler runs it on the
main thread); the swap is one reference assignment under a lock.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from worker.flows.errors import FlowError
from worker.flows.loader import Source, flow_files, load_flows, signature
from worker.flows.model import FlowSet
from worker.media.prompts import MANIFEST_NAME, PromptLibrary

logger = logging.getLogger(__name__)

_NEVER = object()


class FlowReloader:
    """Keeps the current :class:`FlowSet` of ``source`` and replaces it when asked."""

    def __init__(
        self,
        source: Source,
        *,
        prompts: PromptLibrary | str | Path | None = None,
        on_reload: Callable[[FlowSet], None] | None = None,
    ) -> None:
        self.source = source
        self.prompts = prompts
        self.on_reload = on_reload
        """Called with each new set after a successful reload (on the reloading thread)."""
        self._lock = threading.Lock()
        self.last_error: FlowError | None = None
        self.reloads = 0
        self._failed: object = _NEVER
        self._current = load_flows(source, prompts=prompts)

    @property
    def current(self) -> FlowSet:
        """The set new calls start on."""
        return self._current

    def _signature_now(self) -> tuple[tuple[str, int, int], ...] | None:
        try:
            files = flow_files(self.source)
        except FlowError:
            return None
        items = [self.source] if isinstance(self.source, str | Path) else list(self.source)
        folders = [Path(item) for item in items if Path(item).is_dir()]
        return signature(files, [self._current.prompts.folder / MANIFEST_NAME, *folders])

    def changed(self) -> bool:
        """True when a flow file, the folder's file list or the prompt manifest changed.

        Files that failed to load are not reported again until they change once more.
        """
        now = self._signature_now()
        return now != self._current.signature and now != self._failed

    def reload(self) -> bool:
        """Load the files again; True if the new set is now current, False if it was invalid."""
        with self._lock:
            attempted = self._signature_now()
            try:
                fresh = load_flows(
                    self.source, prompts=self.prompts, version=self._current.version + 1
                )
            except FlowError as exc:
                self.last_error = exc
                self._failed = attempted
                logger.error(
                    "flows not reloaded, calls keep version %d: %s", self._current.version, exc
                )
                return False
            self._current = fresh
            self.last_error = None
            self._failed = _NEVER
            self.reloads += 1
            logger.info("flows reloaded: version %d: %s", fresh.version, fresh.summary())
        if self.on_reload is not None:
            self.on_reload(fresh)
        return True

    def reload_if_changed(self) -> bool | None:
        """Reload when :meth:`changed`; None when nothing changed."""
        if not self.changed():
            return None
        return self.reload()

    def install_sighup(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Reload on SIGHUP (Unix); returns a function that removes the handler."""
        loop.add_signal_handler(signal.SIGHUP, self.reload)

        def remove() -> None:
            loop.remove_signal_handler(signal.SIGHUP)

        return remove

    async def watch(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """Reload whenever the files change, until ``stop`` is set (polls every ``interval``)."""
        while not stop.is_set():
            try:
                async with asyncio.timeout(interval):
                    await stop.wait()
            except TimeoutError:
                pass
            if not stop.is_set() and self.changed():
                # Loading reads and decodes nothing heavy, but keep it off the event loop.
                await asyncio.to_thread(self.reload)


__all__ = ["FlowReloader"]
