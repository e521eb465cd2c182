"""Keeping the current rules: reload on change or on request, keep the last good version.

:class:`RulesCache` holds one immutable :class:`~worker.rules.model.RuleSet`.
:meth:`RulesCache.get` looks (at most every ``check_interval`` seconds of the
injected clock) whether the rules file or any file it read (number lists,
holidays) changed size or mtime, and reloads if so. :meth:`reload` reloads
now; :meth:`request_reload` only raises a flag, so it is safe to call from a
signal handler (SIGHUP), and the next :meth:`get` reloads.

A file that no longer loads is logged and the previous version stays in
service; the error is kept in :attr:`RulesCache.last_error` until a good
version loads. Each call evaluates the RuleSet it got, so an edit never
changes a decision half-way.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from worker.rules.errors import RulesError
from worker.rules.loader import load_rules
from worker.rules.model import RuleSet
from worker.yamlfile import stamp

log = logging.getLogger(__name__)


class RulesCache:
    """The current RuleSet of one rules file; the first load must succeed (or raise)."""

    def __init__(
        self,
        path: Path | str,
        *,
        check_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        loader: Callable[[Path], RuleSet] = load_rules,
    ) -> None:
        self.path = Path(path)
        self.check_interval = check_interval
        self._clock = clock
        self._loader = loader
        self._lock = threading.Lock()
        self._reload_requested = False
        self.last_error: RulesError | None = None
        self.version = 1
        self._current = loader(self.path)
        self._watched = self._current.sources
        self._stamp = stamp(self._watched)
        self._checked_at = clock()

    @property
    def current(self) -> RuleSet:
        """The version in service, without looking at the files."""
        return self._current

    def get(self) -> RuleSet:
        """The version in service, after reloading if a file changed or a reload was requested."""
        now = self._clock()
        if self._reload_requested:
            self.reload()
        elif now - self._checked_at >= self.check_interval:
            self._checked_at = now
            if stamp(self._watched) != self._stamp:
                self.reload()
        return self._current

    def _sources_and(self, extra: tuple[Path, ...]) -> tuple[Path, ...]:
        sources = self._current.sources
        return (*sources, *(path for path in extra if path not in sources))

    def request_reload(self) -> None:
        """Ask for a reload at the next :meth:`get` (safe in a signal handler)."""
        self._reload_requested = True

    def reload(self) -> bool:
        """Reload now. True if a new version is in service; False if unchanged or invalid."""
        with self._lock:
            self._reload_requested = False
            self._checked_at = self._clock()
            try:
                loaded = self._loader(self.path)
            except RulesError as exc:
                log.error(
                    "rules %s: the edited file is invalid, keeping version %d (%s): %s",
                    self.path,
                    self.version,
                    self._current.digest[:12],
                    exc,
                )
                self.last_error = exc
                # Do not retry until something changes again, including the files the new
                # version names (a list file that does not exist yet).
                self._watched = self._sources_and(exc.sources)
                self._stamp = stamp(self._watched)
                return False
            self.last_error = None
            self._watched = loaded.sources
            self._stamp = stamp(loaded.sources)
            if loaded.digest == self._current.digest:
                return False
            self._current = loaded
            self.version += 1
            log.info(
                "rules %s: loaded version %d (%s): %s",
                self.path,
                self.version,
                loaded.digest[:12],
                loaded.summary(),
            )
            return True


def reload_on_sighup(cache: RulesCache) -> None:
    """Make SIGHUP request a reload of ``cache`` (call from the main thread at startup)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        cache.request_reload()

    signal.signal(signal.SIGHUP, handler)
