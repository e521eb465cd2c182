"""The measured process of the media benchmark: N calls' worker side in one event loop.

Run by :mod:`bench.media_calls` as ``python -m bench.media_worker``. Three
variants of the same media, each call playing the same prompt in a loop and
recording what the far end says:

``bare``
    the least code with aiortc: an ``RTCPeerConnection``, a track that paces
    the prompt's 20 ms frames on an absolute clock and returns ``av.AudioFrame``
    (aiortc encodes them, per call), and a consumer that writes the decoded
    frames as they come (stereo, as decoded) to a WAV with the ``wave`` module.
``session``
    :class:`~worker.media.session.CallSession` as a flow uses it:
    :class:`~worker.media.playback.PlaybackTrack` (per-call Opus encoder),
    recording with :class:`~worker.media.recorder.WavRecorder`, the RTP
    telephone-event tap and the in-band DTMF detector on every frame.
``encoded``
    the same session with :class:`~worker.media.playback.EncodedPlaybackTrack`:
    the prompt is Opus-encoded once for all calls, no per-call encoder.

``session-nodtmf``, ``session-norec`` and ``encoded-nodtmf`` switch the in-band
DTMF detector or the recording off, to cost them by difference.

Set-up (offers, answers from the far-end process, connection) and a warm-up
are not measured; then one window of ``--window`` seconds is. The result is
one ``result {json}`` line on stdout; ``window-start`` is printed when the
window opens (a profiler can attach then).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any, Protocol

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.media_farend import LOOPBACK, read_message, write_message
from bench.media_probe import (
    CpuClock,
    GcProbe,
    LagProbe,
    ReceiveCounter,
    SendPacing,
    hook_rtp_sends,
    rss_bytes,
)
from worker.media import ice, sdp
from worker.media.audio import FRAME_SAMPLES, SAMPLE_RATE, TIME_BASE
from worker.media.opus import OpusPromptCache
from worker.media.playback import EncodedPlaybackTrack, PlaybackTrack
from worker.media.prompts import Prompt, load_prompt
from worker.media.session import CallSession, MediaConfig

VARIANTS = ("bare", "session", "encoded", "session-nodtmf", "session-norec", "encoded-nodtmf")
"""The first three are the benchmark; the others switch one feature off, to cost it."""
CONNECT_DEADLINE = 60.0
logger = logging.getLogger(__name__)


class BenchCall(Protocol):
    pacing: SendPacing

    async def offer(self) -> str: ...

    async def accept(self, answer: str) -> None: ...

    async def wait_connected(self) -> None: ...

    def start_window(self) -> None: ...

    def received(self) -> tuple[int, int]:
        """(frames received, 20 ms frames missing) in the window."""
        ...

    async def close(self) -> None: ...


# -- the baseline: bare aiortc ------------------------------------------------------


class BareTrack(MediaStreamTrack):
    """The prompt's frames in a loop, frame i released at start + i * 20 ms."""

    kind = "audio"

    def __init__(self, frames: tuple[bytes, ...]) -> None:
        super().__init__()
        self._frames = frames
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._index * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self._frames[self._index % len(self._frames)])
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._index * FRAME_SAMPLES
        frame.time_base = TIME_BASE
        self._index += 1
        return frame


class BareCall:
    def __init__(self, prompt: Prompt, wav_path: Path) -> None:
        self.pc = RTCPeerConnection(ice.rtc_configuration(()))
        self.pc.addTrack(BareTrack(prompt.frames))
        self.pacing = SendPacing()
        self.heard = ReceiveCounter()
        self.wav_path = wav_path
        self.connected = asyncio.Event()
        self._consumer: asyncio.Task[None] | None = None
        self.pc.on("connectionstatechange", self._state)

    def _state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()

    async def offer(self) -> str:
        offer = await self.pc.createOffer()
        with ice.pinned_addresses(LOOPBACK):
            await self.pc.setLocalDescription(offer)
        text: str = self.pc.localDescription.sdp
        return text

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        transceiver = self.pc.getTransceivers()[0]
        hook_rtp_sends(transceiver.sender.transport, self.pacing)
        self._consumer = asyncio.ensure_future(self._consume(transceiver.receiver.track))

    async def _consume(self, track: MediaStreamTrack) -> None:
        with wave.open(str(self.wav_path), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    if not isinstance(frame, av.AudioFrame):
                        continue
                    self.heard.frame(frame.pts or 0, frame.samples)
                    wav.writeframesraw(frame.to_ndarray().tobytes())

    async def wait_connected(self) -> None:
        await self.connected.wait()

    def start_window(self) -> None:
        self.heard.start()

    def received(self) -> tuple[int, int]:
        return self.heard.window()

    async def close(self) -> None:
        await self.pc.close()
        if self._consumer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer


# -- callworker's session ----------------------------------------------------------


class SessionCall:
    def __init__(
        self,
        index: int,
        track: PlaybackTrack,
        prompt: Prompt,
        wav_path: Path | None,
        *,
        inband_dtmf: bool = True,
    ) -> None:
        config = MediaConfig(candidate_addresses=LOOPBACK, inband_dtmf=inband_dtmf)
        self.session = CallSession(config, call_id=f"bench-{index}", playback=track)
        track.play(prompt, loop=True)
        self.pacing = SendPacing()
        self.wav_path = wav_path
        self._base = (0, 0)

    async def offer(self) -> str:
        return await self.session.create_offer()

    async def accept(self, answer: str) -> None:
        await self.session.accept_answer(answer)
        hook_rtp_sends(self.session.pc.getTransceivers()[0].sender.transport, self.pacing)
        if self.wav_path is not None:
            self.session.start_recording(self.wav_path)

    async def wait_connected(self) -> None:
        await self.session.wait_connected()

    def start_window(self) -> None:
        self._base = (self.session.frames_received, len(self.session.audio_gaps))

    def received(self) -> tuple[int, int]:
        gaps = self.session.audio_gaps[self._base[1] :]
        missing = math.ceil(round(sum(seconds for _, seconds in gaps) / 0.02, 6))
        return self.session.frames_received - self._base[0], missing

    async def close(self) -> None:
        await self.session.close()


# -- the run -----------------------------------------------------------------------


class FarEndClient:
    """The JSON-lines signalling link to the far-end process."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, port: int) -> FarEndClient:
        reader, writer = await asyncio.open_connection(LOOPBACK[0], port)
        return cls(reader, writer)

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        async with self._lock:
            await write_message(self.writer, {"op": op, **fields})
            reply = await read_message(self.reader)
        if reply is None:
            raise ConnectionError(f"the far end closed the link during {op!r}")
        return reply


def make_calls(variant: str, count: int, prompt: Prompt, folder: Path) -> list[BenchCall]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    if variant == "bare":
        return [BareCall(prompt, folder / f"{i}.wav") for i in range(count)]
    cache: OpusPromptCache | None = None
    if variant.startswith("encoded"):
        cache = OpusPromptCache()
        cache.preload([prompt])
    calls: list[BenchCall] = []
    for i in range(count):
        track = PlaybackTrack() if cache is None else EncodedPlaybackTrack(cache)
        path = None if variant.endswith("norec") else folder / f"{i}.wav"
        dtmf = not variant.endswith("nodtmf")
        calls.append(SessionCall(i, track, prompt, path, inband_dtmf=dtmf))
    return calls


def check_loopback(text: str, who: str) -> None:
    foreign = sdp.foreign_candidates(text, LOOPBACK)
    if foreign or not sdp.candidate_addresses(text):
        raise RuntimeError(f"{who} SDP must offer 127.0.0.1 only, it offers {foreign or 'none'}")


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    prompt = load_prompt(args.prompt, "prompt")
    calls = make_calls(args.variant, args.calls, prompt, folder)
    gc.collect()
    base_rss = rss_bytes()
    lag = LagProbe()
    lag.run()
    far = await FarEndClient.connect(args.port)
    began = time.monotonic()
    for call in calls:
        offer = await call.offer()
        check_loopback(offer, "the offer")
        answer = str((await far.call("answer", sdp=offer))["sdp"])
        check_loopback(answer, "the answer")
        await call.accept(answer)
    async with asyncio.timeout(CONNECT_DEADLINE):
        await asyncio.gather(*(call.wait_connected() for call in calls))
    setup = time.monotonic() - began
    await asyncio.sleep(args.warmup)  # the warm-up is the behaviour here: let media settle

    cpu = CpuClock()
    collector = GcProbe()
    collector.install()
    collector.start()
    for call in calls:
        call.pacing.start()
        call.start_window()
    await far.call("start")
    lag.start()
    cpu.start()
    print("window-start", flush=True)
    await asyncio.sleep(args.window)  # the measured window
    cpu.stop()
    lag.stop()
    collector.stop()
    collector.remove()
    for call in calls:
        call.pacing.stop()
    received = [call.received() for call in calls]
    rss = rss_bytes()
    far_stats = await far.call("stats")

    closing = time.monotonic()
    await asyncio.gather(*(call.close() for call in calls), return_exceptions=True)
    close_s = time.monotonic() - closing
    await far.call("close")
    await lag.cancel()

    window = cpu.summary(args.calls)
    expected = window["window_s"] / 0.02
    media = [call.pacing.window_packets / expected for call in calls]
    return {
        "variant": args.variant,
        "calls": args.calls,
        **window,
        **lag.summary(),
        **collector.summary(window["window_s"]),
        "media_wall_min": min(media),
        "media_wall_mean": sum(media) / len(media),
        "late_packets": sum(call.pacing.late for call in calls),
        "worst_lateness_ms": max(call.pacing.worst for call in calls) * 1000,
        "received_min": min(frames / expected for frames, _ in received),
        "received_missing_frames": sum(missing for _, missing in received),
        "rss_base_mb": base_rss / 2**20,
        "rss_mb": rss / 2**20,
        "rss_per_call_mb": (rss - base_rss) / 2**20 / args.calls,
        "setup_s": setup,
        "close_s": close_s,
        "far": far_stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="the measured worker of bench.media_calls")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--port", type=int, required=True, help="the far-end process's port")
    parser.add_argument("--prompt", type=Path, required=True, help="audio each call plays")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (s)")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        result = asyncio.run(run(args, Path(folder)))
    print("result " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
