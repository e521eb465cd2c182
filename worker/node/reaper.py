"""Periodic maintenance run by ``callworker beat``: the stale-call reaper and channel refresh.

**Reaper.** A node that dies stops heart-beating; its calls stay up at GoTo
with nobody on our side. Every few seconds the reaper asks the ownership
registry for stale calls, hangs each up through the API (a 404 means GoTo
already ended it), keeps what was recorded up to the crash (the recorder
flushes as it goes, so the partial WAV is readable), marks the call failed
with the reason, and releases it. A call whose hang-up fails is left for
the next pass.

**Channel lifetime.** A webhook notification channel expires; the beat
refreshes it (``PUT .../channel-lifetime``) well before that.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from dataclasses import dataclass
from pathlib import Path

from worker.config import Settings
from worker.goto.client import GoToClient
from worker.goto.errors import GoToError, NotFoundError
from worker.node.live import recording_glob
from worker.ownership import Ownership, StaleCall
from worker.provision import load_state, state_path
from worker.store import CallNotFound, Store

log = logging.getLogger(__name__)

REAP_INTERVAL = 5.0
BEAT_ALIVE_KEY = "callworker:beat:alive"
CHANNEL_REFRESH_INTERVAL = 6 * 3600.0


@dataclass(frozen=True)
class Reaped:
    call_id: str
    node: str
    reason: str
    recordings: tuple[Path, ...]
    hangup: str


def partial_recordings(recordings_dir: Path, call_id: str) -> list[Path]:
    """The WAV files a node wrote for ``call_id``."""
    if not recordings_dir.is_dir():
        return []
    return sorted(recordings_dir.glob(recording_glob(call_id)))


def wav_facts(path: Path) -> tuple[float, int]:
    """(duration seconds, size bytes) of a WAV as its header says, (0, size) if unreadable."""
    size = path.stat().st_size
    try:
        with wave.open(str(path), "rb") as reader:
            return reader.getnframes() / float(reader.getframerate()), size
    except (wave.Error, EOFError):
        return 0.0, size


async def reap_call(
    stale: StaleCall, *, client: GoToClient, store: Store, ownership: Ownership, settings: Settings
) -> Reaped | None:
    try:
        await client.hangup(stale.call_id)
        hangup = "hung up"
    except NotFoundError:
        hangup = "already ended at GoTo"
    except GoToError as exc:
        log.warning("reaper: cannot hang up call %s yet: %s", stale.call_id, exc)
        return None
    recordings = partial_recordings(settings.recordings_dir, stale.call_id)

    def write() -> None:
        try:
            for path in recordings:
                duration, size = wav_facts(path)
                store.add_recording(
                    stale.call_id, path=str(path), duration_seconds=duration, size_bytes=size
                )
            store.mark_failed(stale.call_id, reason=stale.reason)
        except CallNotFound:
            log.warning("reaper: call %s is not in the store", stale.call_id)
        ownership.release(stale.call_id, stale.node)

    await asyncio.to_thread(write)
    log.warning("reaper: call %s of %s %s: %s", stale.call_id, stale.node, hangup, stale.reason)
    return Reaped(stale.call_id, stale.node, stale.reason, tuple(recordings), hangup)


async def reap_once(
    *, client: GoToClient, store: Store, ownership: Ownership, settings: Settings
) -> list[Reaped]:
    stale = await asyncio.to_thread(ownership.stale_calls)
    done: list[Reaped] = []
    for call in stale:
        result = await reap_call(
            call, client=client, store=store, ownership=ownership, settings=settings
        )
        if result is not None:
            done.append(result)
    return done


async def refresh_channel(client: GoToClient, settings: Settings) -> int | None:
    """Extend the provisioned channel's lifetime; the new lifetime, or None if none exists."""
    state = load_state(state_path(settings))
    if state is None or not state.channel_id:
        return None
    lifetime = await client.refresh_channel_lifetime(state.nickname, state.channel_id)
    log.info("channel lifetime refreshed: %s s", lifetime)
    return lifetime


async def run_beat(
    settings: Settings,
    *,
    store: Store,
    ownership: Ownership,
    stop: asyncio.Event,
    reap_interval: float = REAP_INTERVAL,
) -> None:
    """Reap every ``reap_interval`` s and refresh the channel every few hours, until ``stop``."""
    async with GoToClient.from_settings(settings) as client:
        next_refresh = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.to_thread(
                    ownership.redis.set, BEAT_ALIVE_KEY, "1", ex=max(3, round(3 * reap_interval))
                )
                await reap_once(client=client, store=store, ownership=ownership, settings=settings)
            except Exception:
                log.exception("reaper pass failed; trying again in %.0f s", reap_interval)
            if loop.time() >= next_refresh:
                try:
                    await refresh_channel(client, settings)
                    next_refresh = loop.time() + CHANNEL_REFRESH_INTERVAL
                except GoToError as exc:
                    log.warning("channel lifetime refresh failed: %s", exc)
                    next_refresh = loop.time() + 60.0
            try:
                async with asyncio.timeout(reap_interval):
                    await stop.wait()
            except TimeoutError:
                pass
