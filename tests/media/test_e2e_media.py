"""Two real peers over loopback UDP: a worker CallSession and gotosim's aiortc far end.

Each test runs real calls (ICE, DTLS-SRTP, Opus) on 127.0.0.1 and checks
what each side heard against what the other side sent: audio by
cross-correlation with its source, digits by count, source and time,
barge-in on the media clock. Deadlines are generous (the machine is shared);
the waits are on events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np

from gotosim.farend import AiortcFarEnd
from tests.media.conftest import (
    LOOPBACK,
    Call,
    assert_loopback_only,
    chirp,
    connect_call,
    pcm_array,
    read_wav,
    sim_call,
    similarity,
)
from worker.media import sdp
from worker.media.audio import rms_dbfs
from worker.media.playback import PlaybackState
from worker.media.prompts import Prompt, load_prompt, tone_pcm
from worker.media.session import CallSession, MediaConfig

DEADLINE = 30.0
"""Seconds any single wait may take on a loaded machine before the test fails."""


async def test_prompt_played_by_the_worker_is_heard_by_the_caller(
    far_end: AiortcFarEnd, speech: Prompt
) -> None:
    hangup_at = speech.duration + 1.5
    call = await connect_call(far_end, "call-prompt", {"hangup_at": hangup_at})
    playback = call.session.playback.play(speech)
    async with asyncio.timeout(hangup_at + DEADLINE):
        await playback
        await call.session.closed.wait()
        await call.leg.closed.wait()
    assert playback.finished, playback

    report = far_end.heard("call-prompt")
    heard = read_wav(report.wav_path)
    match = similarity(pcm_array(speech.pcm), heard)
    assert match.waveform > 0.8, match
    assert match.envelope > 0.9, match
    # When: the caller heard the prompt start where the worker started it (both
    # clocks start at the first frame each side sent, a few ms apart).
    spans = report.sound(threshold_dbfs=-45.0)
    assert spans, f"the caller heard nothing louder than -45 dBFS: {report.energy[:20]}"
    assert abs(spans[0][0] - match.lag_seconds) < 0.15, (spans, match)
    assert abs(match.lag_seconds - (playback.started_at or 0.0)) < 0.25, (match, playback)


async def test_the_callers_audio_is_recorded_by_the_worker(
    far_end: AiortcFarEnd, speech_wav: Path, tmp_path: Path
) -> None:
    source = load_prompt(speech_wav)
    hangup_at = 0.4 + source.duration + 1.0
    script = {"audio": str(speech_wav), "audio_at": 0.4, "hangup_at": hangup_at}
    call = await connect_call(far_end, "call-record", script)
    # both sides, stereo: the caller on the left, what the worker plays on the right
    call.session.start_recording(tmp_path / "recordings" / "call-record.wav", channels=2)
    sweep = chirp(1.5)
    call.session.playback.say_silence(1.0)
    call.session.playback.play(sweep)
    async with asyncio.timeout(hangup_at + DEADLINE):
        await call.session.closed.wait()
    info = call.session.recording
    assert info is not None, "closing the session did not finish the recording"
    assert info.channels == 2
    assert stat.S_IMODE(os.stat(info.path).st_mode) == 0o600
    caller, ours = read_wav(info.path, channel=0), read_wav(info.path, channel=1)
    assert abs(info.duration_seconds - len(caller) / 48000) < 0.01
    assert info.duration_seconds > source.duration, info

    match = similarity(pcm_array(source.pcm), caller)
    assert match.waveform > 0.8, match
    assert match.envelope > 0.9, match
    assert 0.2 < match.lag_seconds < 0.8, match  # the script starts talking at 0.4 s
    # our side is the prompt itself (no codec in between), where it was played
    near = similarity(pcm_array(sweep.pcm), ours)
    assert near.waveform > 0.99 and abs(near.lag_seconds - 1.0) < 0.05, near


async def test_digits_arrive_once_each_and_audio_keeps_flowing(far_end: AiortcFarEnd) -> None:
    hum = Prompt.from_pcm("hum", tone_pcm([200.0], 1.0, amplitude=0.05))
    folder = far_end.heard_dir.parent / "scripts"
    folder.mkdir()
    _write_wav(folder / "hum.wav", hum.pcm)
    cues: list[dict[str, Any]] = [
        {"at": 0.5, "digit": "1", "mode": "rfc4733", "clock_rate": 8000},
        {"at": 1.0, "digit": "2", "mode": "rfc4733", "clock_rate": 48000},
        {"at": 1.5, "digit": "3", "mode": "inband"},
        {"at": 2.0, "digit": "4", "mode": "both", "clock_rate": 8000},
        {"at": 2.5, "digit": "1", "mode": "rfc4733", "clock_rate": 8000},
        {"at": 3.0, "digit": "#", "mode": "inband"},
    ]
    hangup_at = 4.5
    script = {
        "audio": str(folder / "hum.wav"),
        "loop_audio": True,
        "digits": cues,
        "hangup_at": hangup_at,
    }
    call = await connect_call(far_end, "call-digits", script)
    levels: list[tuple[float, float]] = []
    call.session.on_audio(lambda pcm, at: levels.append((at, rms_dbfs(pcm))))
    async with asyncio.timeout(hangup_at + DEADLINE):
        await call.session.closed.wait()

    got = [(d.digit, d.source) for d in call.session.digits.history]
    assert [digit for digit, _ in got] == ["1", "2", "3", "4", "1", "#"], got
    assert got[0][1] == got[1][1] == got[4][1] == "rfc4733", got
    assert got[2][1] == got[5][1] == "inband", got
    assert call.session.event_packets >= 12, call.session.event_packets
    for event, cue in zip(call.session.digits.history, cues, strict=True):
        assert abs(event.media_time - cue["at"]) < 0.5, (event, cue)

    # The decoder-thread trap: audio must keep arriving, without holes, after the events.
    sent = call.leg.track.frames_sent
    assert call.session.frames_received >= 0.9 * sent, (call.session.frames_received, sent)
    assert not [gap for gap in call.session.audio_gaps if gap[1] > 0.1], call.session.audio_gaps
    after = [level for at, level in levels if 3.3 < at < hangup_at - 0.3]
    assert len(after) >= 0.8 * (hangup_at - 3.6) / 0.02, len(after)
    assert min(after) > -40.0, "the caller's hum stopped reaching the worker after the digits"


def _write_wav(path: Path, pcm: bytes) -> None:
    import wave

    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(pcm)


async def _barge_in_call(far_end: AiortcFarEnd, call_id: str, mode: str) -> tuple[Call, float]:
    press_at = 1.0
    script = {
        "digits": [{"at": press_at, "digit": "5", "mode": mode, "clock_rate": 8000}],
        "hangup_at": 2.6,
    }
    call = await connect_call(far_end, call_id, script)
    playback = call.session.playback.play(chirp(5.0))
    async with asyncio.timeout(DEADLINE):
        await playback
        await call.session.closed.wait()
    assert playback.state is PlaybackState.STOPPED, playback
    digit = call.session.digits.history[0]
    assert digit.digit == "5"
    assert playback.stopped_at is not None
    reaction = playback.stopped_at - digit.media_time
    assert 0.0 <= reaction <= 0.1, (mode, reaction, digit, playback)
    return call, press_at


async def test_a_digit_during_a_prompt_stops_it_within_100_ms_of_media_time(
    far_end: AiortcFarEnd,
) -> None:
    results = await asyncio.gather(
        _barge_in_call(far_end, "call-barge-rfc", "rfc4733"),
        _barge_in_call(far_end, "call-barge-inband", "inband"),
    )
    for call, press_at in results:
        # The caller heard the prompt from its start until shortly after the key press.
        spans = far_end.heard(call.sim.id).sound(threshold_dbfs=-40.0)
        assert spans, call.sim.id
        assert spans[0][0] < 0.3, spans
        assert press_at < spans[-1][1] < press_at + 0.5, spans


async def test_no_sdp_carries_a_candidate_other_than_loopback(far_end: AiortcFarEnd) -> None:
    pinned = CallSession(MediaConfig(candidate_addresses=LOOPBACK), call_id="pinned")
    default = CallSession(MediaConfig(), call_id="default")
    try:
        offers = await asyncio.gather(pinned.create_offer(), default.create_offer())
        assert_loopback_only(offers[0])
        # The seam is scoped: a session without pinned addresses, gathering at
        # the same time, gets aioice's default, which never includes loopback.
        assert "127.0.0.1" not in sdp.candidate_addresses(offers[1]), offers[1]

        answer = await far_end.answer(sim_call("pinned"), offers[0])
        assert_loopback_only(answer)
        assert sdp.is_ice_lite(answer) and sdp.setup_role(answer) == "passive"
        assert sdp.telephone_events(answer) == sdp.telephone_events(offers[0])
        await pinned.accept_answer(answer)
        async with asyncio.timeout(DEADLINE):
            await pinned.wait_connected()
    finally:
        await asyncio.gather(pinned.close(), default.close())


def _decoder_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "audio-decoder")


async def test_many_sessions_close_concurrently_and_cleanly(far_end: AiortcFarEnd) -> None:
    before = _decoder_threads()
    calls = await asyncio.gather(
        *(connect_call(far_end, f"call-many-{i}") for i in range(10)), return_exceptions=False
    )
    tone = chirp(2.0)
    for call in calls:
        call.session.playback.play(tone, loop=True)
    async with asyncio.timeout(DEADLINE):
        # everyone is talking before we hang up
        await asyncio.gather(*(_first_frame(call) for call in calls))
        # every session closed twice at once, from twenty tasks
        await asyncio.gather(*(call.session.close() for call in calls for _ in range(2)))
    for call in calls:
        assert call.session.closed.is_set()
        assert call.session.close_reason == "closed locally"
        assert call.session.pc.connectionState == "closed"
        assert not call.session.playback.playing
    async with asyncio.timeout(DEADLINE):
        await far_end.close()
    assert all(call.leg.closed.is_set() for call in calls)
    assert _decoder_threads() <= before, [t.name for t in threading.enumerate()]


async def _first_frame(call: Call) -> None:
    heard = asyncio.Event()
    unsubscribe = call.session.on_audio(lambda pcm, at: heard.set())
    try:
        await heard.wait()
    finally:
        unsubscribe()


def test_similarity_rejects_unrelated_audio() -> None:
    """The correlation check itself must tell a different signal apart."""
    rng = np.random.default_rng(7)
    source = pcm_array(chirp(1.0).pcm)
    other = rng.normal(0.0, 3000.0, 96000)
    match = similarity(source, other)
    assert match.waveform < 0.2 and match.envelope < 0.5, match
