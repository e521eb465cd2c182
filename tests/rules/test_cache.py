"""Reloading on change (injected clock), on request, on SIGHUP; bad edits keep the old version."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from tests.rules.util import decide, write
from worker.node.decide import Action
from worker.rules import RulesCache, RulesError, reload_on_sighup

V1 = "rules:\n  - name: v1\n    when: {caller_in_list: blocked.txt}\n    decline: {}\n"
V2 = V1.replace("v1", "v2")
BAD = V1.replace("v1", "v3") + "    ignore: {}\n"  # two actions in one rule, on line 5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def edit(path: Path, text: str) -> None:
    """Rewrite ``path`` and move its mtime forward, so the change shows on any file system."""
    stat = path.stat() if path.exists() else None
    path.write_text(text)
    if stat is not None:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Clock, RulesCache]:
    path = write(tmp_path, V1, blocked__txt="+15145550142\n")
    clock = Clock()
    return path, clock, RulesCache(path, check_interval=2.0, clock=clock)


def test_reloads_when_the_file_changes(setup: tuple[Path, Clock, RulesCache]) -> None:
    path, clock, cache = setup
    first = cache.get()
    assert first.rules[0].name == "v1"
    edit(path, V2)
    clock.now += 1.0  # within the check interval: not looked at yet
    assert cache.get() is first
    clock.now += 1.0
    second = cache.get()
    assert second.rules[0].name == "v2"
    assert cache.version == 2
    assert second.digest != first.digest
    # The first version is untouched: a call that started on it decides the same way.
    assert first.rules[0].name == "v1"
    assert decide(first, caller="+15145550142").rule == "v1"


def test_reloads_when_a_list_file_changes(setup: tuple[Path, Clock, RulesCache]) -> None:
    path, clock, cache = setup
    first = cache.get()
    assert decide(first, caller="+15145550199").action is Action.ANSWER
    edit(path.parent / "blocked.txt", "+15145550142\n+15145550199\n")
    clock.now += 5
    second = cache.get()
    assert decide(second, caller="+15145550199").action is Action.DECLINE
    assert decide(first, caller="+15145550199").action is Action.ANSWER


def test_a_bad_edit_keeps_the_previous_version(
    setup: tuple[Path, Clock, RulesCache], caplog: pytest.LogCaptureFixture
) -> None:
    path, clock, cache = setup
    first = cache.get()
    edit(path, BAD)
    clock.now += 5
    with caplog.at_level(logging.ERROR, logger="worker.rules.cache"):
        kept = cache.get()
    assert kept is first
    assert cache.version == 1
    assert cache.last_error is not None and cache.last_error.kind == "two-actions"
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1
    assert "keeping version 1" in logged[0] and "rules.yaml:5" in logged[0]
    # Not retried (nor logged again) until something changes.
    caplog.clear()
    clock.now += 5
    assert cache.get() is first
    assert caplog.records == []
    # Fixed: the new version goes into service and the error clears.
    edit(path, V2)
    clock.now += 5
    assert cache.get().rules[0].name == "v2"
    assert cache.last_error is None
    assert cache.version == 2


def test_a_missing_list_file_that_appears_later(setup: tuple[Path, Clock, RulesCache]) -> None:
    path, clock, cache = setup
    edit(path, V2.replace("blocked.txt", "vip.txt"))
    clock.now += 5
    assert cache.get().rules[0].name == "v1"
    assert cache.last_error is not None and cache.last_error.kind == "missing-file"
    # Creating the list file (the rules file unchanged) is enough.
    (path.parent / "vip.txt").write_text("+15145550000\n")
    clock.now += 5
    assert cache.get().rules[0].name == "v2"


def test_same_content_is_not_a_new_version(setup: tuple[Path, Clock, RulesCache]) -> None:
    path, clock, cache = setup
    first = cache.get()
    edit(path, V1)  # touched, not changed
    clock.now += 5
    assert cache.get() is first
    assert cache.version == 1
    assert cache.reload() is False


def test_reload_on_request_ignores_the_interval(setup: tuple[Path, Clock, RulesCache]) -> None:
    path, _clock, cache = setup
    path.write_text(V2)  # no mtime games: an explicit reload reads the file anyway
    cache.request_reload()
    assert cache.get().rules[0].name == "v2"
    path.write_text(V1)
    assert cache.reload() is True
    assert cache.current.rules[0].name == "v1"
    assert cache.version == 3


def test_sighup_requests_a_reload(setup: tuple[Path, Clock, RulesCache]) -> None:
    path, _clock, cache = setup
    previous = signal.getsignal(signal.SIGHUP)
    try:
        reload_on_sighup(cache)
        path.write_text(V2)
        os.kill(os.getpid(), signal.SIGHUP)
        assert cache.get().rules[0].name == "v2"
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_first_load_must_succeed(tmp_path: Path) -> None:
    path = write(tmp_path, BAD, blocked__txt="")
    with pytest.raises(RulesError, match="keep one"):
        RulesCache(path)
