"""The far ends of the media benchmark: one process holding N aiortc answerers.

Run by :mod:`bench.media_calls`, never measured as the worker: it keeps the
callers' side of every call out of the measured process. Each leg is a plain
``RTCPeerConnection`` that answers an offer (host candidates on 127.0.0.1
only, no STUN), plays the caller's audio in a loop and reads everything it
hears. To stay cheap on a 2-core machine the caller's audio is Opus encoded
once and sent as packets (:class:`~worker.media.playback.EncodedPlaybackTrack`
with an :class:`~worker.media.opus.OpusPromptCache`); what it hears is decoded
by aiortc (as any receiver) and counted, not stored.

Signalling is JSON lines over one TCP connection on 127.0.0.1, one answer per
request, in order::

    {"op": "answer", "sdp": "..."}  ->  {"sdp": "..."}
    {"op": "start"}                 ->  {}            (the measured window opens)
    {"op": "stats"}                 ->  {"calls": N, "cpu_per_call_s": ..., ...}
    {"op": "close"}                 ->  {"closed": N} (then the process exits)

On start it prints ``port <number>`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.media_probe import CpuClock, LagProbe, ReceiveCounter, percentile
from worker.media import ice
from worker.media.opus import OpusPromptCache
from worker.media.playback import EncodedPlaybackTrack
from worker.media.prompts import Prompt, load_prompt

LOOPBACK = ("127.0.0.1",)
logger = logging.getLogger(__name__)


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """One JSON object from a line, or None at the end of the stream."""
    line = await reader.readline()
    if not line:
        return None
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {line[:80]!r}")
    return message


async def write_message(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()


class FarLeg:
    """One caller: answers an offer, plays ``prompt`` in a loop, counts what it hears."""

    def __init__(self, cache: OpusPromptCache, prompt: Prompt) -> None:
        self.pc = RTCPeerConnection(ice.rtc_configuration(()))
        self.track = EncodedPlaybackTrack(cache)
        self.track.play(prompt, loop=True)
        self.heard = ReceiveCounter()
        self._consumer: asyncio.Task[None] | None = None

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        self.pc.addTrack(self.track)  # after the offer, before the answer: we send too
        answer = await self.pc.createAnswer()
        with ice.pinned_addresses(LOOPBACK):
            await self.pc.setLocalDescription(answer)
        track = self.pc.getTransceivers()[0].receiver.track
        self._consumer = asyncio.ensure_future(self._consume(track))
        text: str = self.pc.localDescription.sdp
        return text

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    self.heard.frame(frame.pts or 0, frame.samples)

    async def close(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        await self.pc.close()


class FarEnds:
    """All legs of one run and the RPC that drives them."""

    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self.cache = OpusPromptCache()
        self.cache.preload([prompt])
        self.legs: list[FarLeg] = []
        self.lag = LagProbe()
        self.cpu = CpuClock()
        self.done = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (message := await read_message(reader)) is not None:
                reply = await self.handle(message)
                await write_message(writer, reply)
                if message.get("op") == "close":
                    break
        finally:
            writer.close()
            self.done.set()

    async def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "answer":
            leg = FarLeg(self.cache, self.prompt)
            self.legs.append(leg)
            return {"sdp": await leg.answer(str(message["sdp"]))}
        if op == "start":
            for leg in self.legs:
                leg.heard.start()
            self.lag.start()
            self.cpu.start()
            return {}
        if op == "stats":
            self.cpu.stop()
            self.lag.stop()
            return self.stats()
        if op == "close":
            await asyncio.gather(*(leg.close() for leg in self.legs), return_exceptions=True)
            return {"closed": len(self.legs)}
        raise ValueError(f"unknown far-end op {op!r}")

    def stats(self) -> dict[str, Any]:
        cpu = self.cpu.summary(len(self.legs))
        windows = [leg.heard.window() for leg in self.legs]
        expected = cpu["window_s"] / 0.02
        heard = [frames / expected for frames, _ in windows] or [math.nan]
        return {
            "calls": len(self.legs),
            "cpu_per_call_s": cpu["cpu_per_call_s"],
            "busy": cpu["busy"],
            "lag_p99_ms": percentile(self.lag.samples, 0.99) * 1000,
            "heard_min": min(heard),
            "heard_missing_frames": sum(missing for _, missing in windows),
            "silent_legs": sum(1 for frames, _ in windows if frames == 0),
        }


async def main_async(prompt_path: Path) -> None:
    far = FarEnds(load_prompt(prompt_path, "caller"))
    far.lag.run()
    server = await asyncio.start_server(far.serve, LOOPBACK[0], 0)
    port = server.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    async with server:
        await far.done.wait()
    await far.lag.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="far ends for bench.media_calls")
    parser.add_argument("--caller", type=Path, required=True, help="audio the callers play")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main_async(args.caller))


if __name__ == "__main__":
    main()
