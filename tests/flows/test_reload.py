"""Reloading flows: new calls get the new version, a bad edit keeps the old one."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.flows.conftest import write_flow
from worker.flows.engine import FlowRun
from worker.flows.events import FlowCall, PlaybackDone, PlaySounds
from worker.flows.model import FlowSet
from worker.flows.reload import FlowReloader

DEADLINE = 20.0

V1 = """
    flow: main
    steps:
      hello:
        play: greeting
      bye:
        play: ok
"""
V2 = V1.replace("play: ok", "play: fail")
BROKEN = V1.replace("play: ok", "play: no_such_prompt")


def bump(path: Path) -> None:
    """Make sure the file's mtime moves even on a coarse clock."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def test_a_call_keeps_its_version_and_new_calls_get_the_new_one(
    tmp_path: Path, prompt_folder: Path
) -> None:
    path = write_flow(tmp_path, "main", V1)
    reloader = FlowReloader(tmp_path, prompts=prompt_folder)
    assert not reloader.changed()
    live = FlowRun(reloader.current, "main", FlowCall("live"))
    live.start()

    write_flow(tmp_path, "main", V2)
    bump(path)
    assert reloader.changed()
    assert reloader.reload_if_changed() is True
    assert reloader.current.version == 2 and reloader.last_error is None
    assert reloader.reload_if_changed() is None  # nothing changed since

    assert live.on(PlaybackDone()) == PlaySounds(("ok",), True)  # the call's own version
    fresh = FlowRun(reloader.current, "main", FlowCall("new"))
    fresh.start()
    assert fresh.on(PlaybackDone()) == PlaySounds(("fail",), True)


def test_an_invalid_edit_keeps_the_previous_version(tmp_path: Path, prompt_folder: Path) -> None:
    path = write_flow(tmp_path, "main", V1)
    reloader = FlowReloader(tmp_path, prompts=prompt_folder)
    before = reloader.current
    write_flow(tmp_path, "main", BROKEN)
    bump(path)
    assert reloader.reload() is False
    assert reloader.current is before
    assert reloader.last_error is not None and reloader.last_error.kind == "missing-prompt"
    assert "no_such_prompt" in str(reloader.last_error)
    assert not reloader.changed()  # the broken files are not retried until they change
    write_flow(tmp_path, "main", V2)
    bump(path)
    assert reloader.changed() and reloader.reload()
    assert reloader.current.version == 2 and reloader.last_error is None


def test_a_new_file_in_the_folder_is_a_change(tmp_path: Path, prompt_folder: Path) -> None:
    write_flow(tmp_path, "main", V1)
    reloader = FlowReloader(tmp_path, prompts=prompt_folder)
    write_flow(tmp_path, "other", V1.replace("flow: main", "flow: other"))
    assert reloader.changed() and reloader.reload()
    assert set(reloader.current) == {"main", "other"}


async def test_watch_reloads_on_change_and_sighup_reloads(
    tmp_path: Path, prompt_folder: Path
) -> None:
    loop = asyncio.get_running_loop()
    reloaded: asyncio.Queue[FlowSet] = asyncio.Queue()
    path = write_flow(tmp_path, "main", V1)
    reloader = FlowReloader(
        tmp_path,
        prompts=prompt_folder,
        on_reload=lambda flows: loop.call_soon_threadsafe(reloaded.put_nowait, flows),
    )
    stop = asyncio.Event()
    watcher = asyncio.create_task(reloader.watch(stop, interval=0.05))
    try:
        write_flow(tmp_path, "main", V2)
        bump(path)
        async with asyncio.timeout(DEADLINE):
            flows = await reloaded.get()
        assert flows.version == 2 and reloader.current is flows

        remove = reloader.install_sighup(loop)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            async with asyncio.timeout(DEADLINE):
                flows = await reloaded.get()
            assert flows.version == 3
        finally:
            remove()
    finally:
        stop.set()
        async with asyncio.timeout(DEADLINE):
            await watcher
