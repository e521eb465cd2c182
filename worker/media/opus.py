"""Prompts encoded to Opus once, for every call to send without its own encoder.

aiortc's ``RTCRtpSender`` accepts ``av.Packet`` from a track's ``recv()`` and
only packs it into RTP (the path ``MediaPlayer(decode=False)`` uses), skipping
the per-call Opus encoder and the executor hop that runs it. An
:class:`OpusPromptCache` encodes each prompt to 20 ms Opus packets once and
keeps them; :class:`~worker.media.playback.EncodedPlaybackTrack` sends them.

The packets are mono Opus (a stereo Opus decoder, as on the far end, plays
them on both channels). Encoder lookahead makes one packet more than the
prompt has frames; the audio is shifted by 6.5 ms, as it is on the per-call
path. Each prompt starts from a fresh encoder state, which decoders handle at
the seam like any stream change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import av

from worker.media.audio import FRAME_SAMPLES, SAMPLE_RATE, SILENT_FRAME, TIME_BASE, pcm_to_frame
from worker.media.prompts import Prompt

DEFAULT_BITRATE = 32000
"""Bits per second of the cached packets: plenty for mono speech."""


def encode_opus(
    frames: Iterable[bytes], *, bitrate: int = DEFAULT_BITRATE, application: str = "voip"
) -> tuple[bytes, ...]:
    """Encode 960-sample mono s16 48 kHz frames to 20 ms Opus packets (encoder flushed)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.bit_rate = bitrate
    codec.format = "s16"
    codec.layout = "mono"
    codec.sample_rate = SAMPLE_RATE
    codec.time_base = TIME_BASE
    codec.options = {"application": application}
    packets: list[bytes] = []
    for index, pcm in enumerate(frames):
        packets.extend(bytes(p) for p in codec.encode(pcm_to_frame(pcm, index * FRAME_SAMPLES)))
    packets.extend(bytes(p) for p in codec.encode(None))
    return tuple(packets)


class OpusPromptCache:
    """Opus packets per prompt, encoded on first use and shared; thread-safe.

    Keyed by prompt object (the cache holds a reference, so an id is never
    reused while cached). Call :meth:`preload` at start-up so no call waits
    for an encode on the event loop.
    """

    def __init__(self, *, bitrate: int = DEFAULT_BITRATE, application: str = "voip") -> None:
        self.bitrate = bitrate
        self.application = application
        self._packets: dict[int, tuple[Prompt, tuple[bytes, ...]]] = {}
        self._lock = threading.Lock()
        # The last of a few silent frames: a steady-state silent packet.
        self.silence_packet: bytes = encode_opus(
            [SILENT_FRAME] * 5, bitrate=bitrate, application=application
        )[-2]

    def packets(self, prompt: Prompt) -> tuple[bytes, ...]:
        """The Opus packets for ``prompt``, one per 20 ms."""
        entry = self._packets.get(id(prompt))
        if entry is not None:
            return entry[1]
        with self._lock:
            entry = self._packets.get(id(prompt))
            if entry is None:
                encoded = encode_opus(
                    prompt.frames, bitrate=self.bitrate, application=self.application
                )
                entry = (prompt, encoded)
                self._packets[id(prompt)] = entry
        return entry[1]

    def preload(self, prompts: Iterable[Prompt]) -> None:
        for prompt in prompts:
            self.packets(prompt)

    def __len__(self) -> int:
        return len(self._packets)
