"""Shared pieces of the call-media tests: two real peers over loopback UDP.

``connect_call`` sets up one call between a worker-side :class:`CallSession`
and gotosim's :class:`AiortcFarEnd` (no HTTP), checks that neither SDP offers
a candidate other than 127.0.0.1, and waits for the media to connect.
``similarity`` compares heard audio with its source by cross-correlation.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gotosim.farend import AiortcFarEnd
from gotosim.model import CallState, Direction, SimCall
from worker.media import sdp
from worker.media.prompts import Prompt, load_prompt
from worker.media.session import CallSession, MediaConfig

LOOPBACK = ("127.0.0.1",)
CONNECT_DEADLINE = 20.0
"""Seconds a call may take to connect on a loaded, shared machine (30 ms when idle)."""


def sim_call(call_id: str, script: Any = None) -> SimCall:
    return SimCall(
        id=call_id,
        direction=Direction.INBOUND,
        organization_id="org-test",
        extension_number="1000",
        number="+15550100",
        name="Test Caller",
        state=CallState.CONNECTING,
        created_at=time.time(),
        script=script,
    )


@dataclass
class Call:
    session: CallSession
    sim: SimCall
    far_end: AiortcFarEnd

    @property
    def leg(self) -> Any:
        return self.far_end.leg(self.sim.id)


def assert_loopback_only(text: str) -> None:
    candidates = sdp.candidate_addresses(text)
    assert candidates, f"the SDP offers no candidate at all:\n{text}"
    foreign = sdp.foreign_candidates(text, LOOPBACK)
    assert not foreign, f"the SDP offers non-loopback candidates {foreign}:\n{text}"


async def connect_call(
    far_end: AiortcFarEnd,
    call_id: str,
    script: Any = None,
    *,
    config: MediaConfig | None = None,
    barge_in: bool = True,
) -> Call:
    session = CallSession(
        config or MediaConfig(candidate_addresses=LOOPBACK), call_id=call_id, barge_in=barge_in
    )
    call = sim_call(call_id, script)
    offer = await session.create_offer()
    assert_loopback_only(offer)
    answer = await far_end.answer(call, offer)
    assert_loopback_only(answer)
    await session.accept_answer(answer)
    async with asyncio.timeout(CONNECT_DEADLINE):
        await session.wait_connected()
    return Call(session, call, far_end)


@pytest.fixture
async def far_end(tmp_path: Path) -> AsyncIterator[AiortcFarEnd]:
    far = AiortcFarEnd(tmp_path / "heard", candidate_addresses=LOOPBACK)
    try:
        yield far
    finally:
        await far.close()


def speak(text: str, path: Path) -> Path:
    """Synthesize ``text`` with espeak-ng into a WAV file."""
    binary = shutil.which("espeak-ng")
    assert binary is not None, "espeak-ng is not installed; run scripts/bootstrap"
    subprocess.run([binary, "-s", "170", "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About two seconds of synthetic speech."""
    folder = tmp_path_factory.mktemp("speech")
    return speak("Thanks for calling. Press one for sales, two for support.", folder / "s.wav")


@pytest.fixture(scope="session")
def speech(speech_wav: Path) -> Prompt:
    return load_prompt(speech_wav, "speech")


def chirp(seconds: float, low: float = 300.0, high: float = 3000.0, level: float = 0.3) -> Prompt:
    """A linear sweep from ``low`` to ``high`` Hz: no two stretches alike, so lags are unique."""
    rate = 48000
    t = np.arange(round(seconds * rate)) / rate
    phase = 2 * np.pi * (low * t + (high - low) * t * t / (2 * seconds))
    pcm = (level * 32767 * np.sin(phase)).astype("<i2").tobytes()
    return Prompt.from_pcm("chirp", pcm)


def read_wav(path: Path, channel: int = 0) -> np.ndarray[Any, Any]:
    """One channel of a 48 kHz s16 WAV as float samples."""
    import wave

    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 48000 and wav.getsampwidth() == 2
        data = wav.readframes(wav.getnframes())
        channels = wav.getnchannels()
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64)
    return samples.reshape(-1, channels)[:, channel]


def pcm_array(pcm: bytes) -> np.ndarray[Any, Any]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


@dataclass(frozen=True)
class Similarity:
    lag_seconds: float
    waveform: float
    """Pearson correlation of the samples at the best lag."""
    envelope: float
    """Pearson correlation of the 20 ms RMS envelopes at that lag."""


def similarity(source: np.ndarray[Any, Any], heard: np.ndarray[Any, Any]) -> Similarity:
    """Where ``source`` sits inside ``heard`` and how alike they are there."""
    assert len(heard) >= len(source) // 2, f"heard {len(heard)} samples, source {len(source)}"
    size = 1 << (len(source) + len(heard)).bit_length()
    spectrum = np.fft.rfft(heard, size) * np.conj(np.fft.rfft(source, size))
    correlation = np.fft.irfft(spectrum, size)
    lag = int(np.argmax(correlation))
    if lag > size // 2:
        lag -= size
    start_h, start_s = max(lag, 0), max(-lag, 0)
    length = min(len(heard) - start_h, len(source) - start_s)
    assert length > 48000 // 2, f"source and heard overlap by only {length} samples at lag {lag}"
    a = source[start_s : start_s + length]
    b = heard[start_h : start_h + length]
    waveform = float(np.corrcoef(a, b)[0, 1])
    frames = length // 960
    env_a = np.sqrt(np.mean(a[: frames * 960].reshape(frames, 960) ** 2, axis=1))
    env_b = np.sqrt(np.mean(b[: frames * 960].reshape(frames, 960) ** 2, axis=1))
    envelope = float(np.corrcoef(env_a, env_b)[0, 1])
    return Similarity(lag / 48000, waveform, envelope)
