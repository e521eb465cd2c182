"""DTMF: RFC 4733 parsing and dedup, and the in-band detector on real tones, Opus and speech."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from worker.media.audio import FRAME_BYTES, SAMPLE_RATE, TIME_BASE, frame_to_mono_pcm, silence
from worker.media.audio import split_frames as frames_of
from worker.media.dtmf import (
    DIGITS,
    DigitEvent,
    DtmfError,
    InbandDetector,
    Rfc4733Decoder,
    dtmf_tone,
    encode_rfc4733,
    parse_rfc4733,
    rfc4733_payloads,
)
from worker.media.opus import encode_opus
from worker.media.prompts import load_prompt

# -- RFC 4733 -------------------------------------------------------------------


def test_payload_round_trip_and_layout() -> None:
    payload = encode_rfc4733("#", 1600, end=True, volume=10)
    # event 11, E bit + volume 10, duration 1600 big-endian
    assert payload == bytes([11, 0x80 | 10, 0x06, 0x40])
    parsed = parse_rfc4733(payload)
    assert (parsed.digit, parsed.end, parsed.volume, parsed.duration) == ("#", True, 10, 1600)
    for code, digit in enumerate(DIGITS):
        assert parse_rfc4733(encode_rfc4733(digit, 0, end=False)).event == code
    assert parse_rfc4733(encode_rfc4733("a", 1, end=False)).digit == "A"


def test_bad_payloads_and_digits_are_refused() -> None:
    with pytest.raises(DtmfError, match="4 bytes"):
        parse_rfc4733(b"\x01\x02")
    with pytest.raises(DtmfError, match="not a DTMF digit"):
        encode_rfc4733("x", 100, end=False)
    with pytest.raises(DtmfError, match="16 bits"):
        encode_rfc4733("1", 70000, end=False)
    with pytest.raises(DtmfError, match="clock rate"):
        Rfc4733Decoder(44100)


def _send(
    decoder: Rfc4733Decoder, payloads: list[bytes], ssrc: int, timestamp: int, t0: float
) -> list[DigitEvent]:
    events = []
    for i, payload in enumerate(payloads):
        event = decoder.feed(ssrc, timestamp, payload, t0 + i * 0.02)
        if event is not None:
            events.append(event)
    return events


@pytest.mark.parametrize("clock_rate", [8000, 48000])
def test_each_press_emitted_once_at_its_first_packet(clock_rate: int) -> None:
    decoder = Rfc4733Decoder(clock_rate)
    seen: list[DigitEvent] = []
    timestamp = 123_456
    for index, digit in enumerate("159#*0"):
        payloads = rfc4733_payloads(digit, 0.12, clock_rate)
        # progress packets every 20 ms, then the end packet three times
        assert len(payloads) == 5 + 3
        seen += _send(decoder, payloads, 0xCAFE, timestamp, t0=1.0 + index)
        timestamp += clock_rate  # next press a second later on the RTP clock
    assert [e.digit for e in seen] == list("159#*0")
    assert [e.media_time for e in seen] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert all(e.source == "rfc4733" for e in seen)
    # emitted on the first progress packet: 20 ms into the press
    assert seen[0].duration == pytest.approx(0.02)


def test_triple_end_packets_are_deduplicated_per_ssrc_and_timestamp() -> None:
    decoder = Rfc4733Decoder(8000)
    end = encode_rfc4733("7", 800, end=True)
    assert decoder.feed(1, 5000, end, 0.5) is not None
    assert decoder.feed(1, 5000, end, 0.52) is None
    assert decoder.feed(1, 5000, end, 0.54) is None
    # same timestamp, another SSRC: another sender, another press
    assert decoder.feed(2, 5000, end, 0.56) is not None
    # same digit again later: a new press
    again = decoder.feed(1, 5800, end, 1.0)
    assert again is not None and again.digit == "7"


def test_chromium_quirk_three_end_packets_with_48k_timestamps_at_8000() -> None:
    """Chromium with telephone-event/8000 next to Opus: only end packets, 48 kHz timestamps."""
    decoder = Rfc4733Decoder(8000)
    events = []
    timestamp = 4_000_000_000  # near the 32-bit wrap
    for index, digit in enumerate("1234"):
        end = encode_rfc4733(digit, 4800, end=True)  # duration on the wrong clock
        for repeat in range(3):
            event = decoder.feed(0xDEAD, timestamp, end, index * 0.5 + repeat * 0.02)
            if event is not None:
                events.append(event)
        timestamp = (timestamp + 24_000) % (1 << 32)  # 500 ms on the 48 kHz audio clock
    assert [e.digit for e in events] == list("1234")
    assert [e.media_time for e in events] == [0.0, 0.5, 1.0, 1.5]


def test_lost_start_packets_still_give_the_digit_once() -> None:
    decoder = Rfc4733Decoder(48000)
    payloads = rfc4733_payloads("9", 0.2, 48000)
    events = _send(decoder, payloads[4:], 7, 960_000, t0=3.0)  # first four packets lost
    assert [e.digit for e in events] == ["9"]


def test_long_press_continuation_segment_is_not_a_new_press() -> None:
    """A press longer than 65535 units goes on under a new timestamp (RFC 4733 2.5.1.3)."""
    decoder = Rfc4733Decoder(48000)
    first = decoder.feed(9, 1000, encode_rfc4733("0", 960, end=False), 0.0)
    assert first is not None
    assert decoder.feed(9, 1000, encode_rfc4733("0", 0xFFFF, end=False), 1.36) is None
    # the continuation segment starts 0xFFFF later, same event, not ended
    assert decoder.feed(9, 1000 + 0xFFFF, encode_rfc4733("0", 960, end=False), 1.38) is None
    assert decoder.feed(9, 1000 + 0xFFFF, encode_rfc4733("0", 9600, end=True), 1.6) is None
    # a real new press of the same key afterwards counts
    assert decoder.feed(9, 200_000, encode_rfc4733("0", 960, end=False), 3.0) is not None


def test_events_above_15_are_ignored() -> None:
    decoder = Rfc4733Decoder(8000)
    flash = bytes([16, 0x80 | 10, 0, 160])  # event 16: hook flash
    assert decoder.feed(1, 10, flash, 0.0) is None


# -- in-band --------------------------------------------------------------------

GAP = silence(4800)  # 100 ms


def _detect(pcm: bytes, chunk_bytes: int = FRAME_BYTES, t0: float = 0.0) -> list[DigitEvent]:
    detector = InbandDetector()
    events: list[DigitEvent] = []
    for offset in range(0, len(pcm), chunk_bytes):
        events += detector.feed(pcm[offset : offset + chunk_bytes], t0 + offset / 2 / SAMPLE_RATE)
    return events


def _all_digits(seconds: float = 0.1) -> bytes:
    return GAP + b"".join(dtmf_tone(digit, seconds) + GAP for digit in DIGITS)


def test_every_digit_detected_exactly_once_with_its_start_time() -> None:
    events = _detect(_all_digits(), t0=10.0)
    assert "".join(e.digit for e in events) == DIGITS
    assert all(e.source == "inband" for e in events)
    for index, event in enumerate(events):
        tone_start = 10.0 + 0.1 + index * 0.2
        assert event.media_time == pytest.approx(tone_start, abs=0.011)


def test_chunking_does_not_matter() -> None:
    pcm = _all_digits(0.06)
    odd = _detect(pcm, chunk_bytes=2 * 333)
    whole = _detect(pcm, chunk_bytes=len(pcm))
    assert "".join(e.digit for e in odd) == DIGITS
    assert [(e.digit, e.media_time) for e in odd] == [(e.digit, e.media_time) for e in whole]


def test_forty_ms_tones_at_any_alignment() -> None:
    rng = np.random.default_rng(7)
    for digit in DIGITS:
        pcm = silence(int(rng.integers(0, 960))) + dtmf_tone(digit, 0.04) + GAP
        assert [e.digit for e in _detect(pcm)] == [digit]


def test_repeated_key_needs_a_pause_and_a_held_key_counts_once() -> None:
    held = GAP + dtmf_tone("5", 2.0) + GAP
    assert [e.digit for e in _detect(held)] == ["5"]
    twice = GAP + dtmf_tone("5", 0.08) + silence(2400) + dtmf_tone("5", 0.08) + GAP
    assert [e.digit for e in _detect(twice)] == ["5", "5"]
    # a different key straight after, without a pause, is a new press
    back_to_back = GAP + dtmf_tone("1", 0.1) + dtmf_tone("2", 0.1) + GAP
    assert [e.digit for e in _detect(back_to_back)] == ["1", "2"]


def test_quiet_tones_are_ignored() -> None:
    assert _detect(GAP + dtmf_tone("3", 0.2, amplitude=0.01) + GAP) == []


def _opus_round_trip(pcm: bytes) -> bytes:
    """Encode to Opus and decode the way aiortc's receiver does (stereo s16), then downmix."""
    decoder = av.CodecContext.create("libopus", "r")
    decoder.format = "s16"
    decoder.layout = "stereo"
    decoder.sample_rate = SAMPLE_RATE
    out = bytearray()
    for index, data in enumerate(encode_opus(frames_of(pcm))):
        packet = av.Packet(data)
        packet.pts = index * 960
        packet.time_base = TIME_BASE
        for frame in decoder.decode(packet):
            assert isinstance(frame, av.AudioFrame)
            out += frame_to_mono_pcm(frame)
    return bytes(out)


def test_every_digit_survives_an_opus_round_trip() -> None:
    decoded = _opus_round_trip(_all_digits())
    events = _detect(decoded)
    assert "".join(e.digit for e in events) == DIGITS


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed; run scripts/bootstrap")
    path = Path(tmp_path_factory.mktemp("speech")) / "speech.wav"
    text = (
        "Thank you for calling. Please hold while we connect your call. "
        "One, two, three, four, five, six, seven, eight, nine, zero. Press star or pound."
    )
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return load_prompt(path).pcm


def test_no_false_digits_on_speech(speech: bytes) -> None:
    assert len(speech) > 5 * SAMPLE_RATE * 2  # several seconds of speech
    assert _detect(speech) == []
    assert _detect(_opus_round_trip(speech)) == []


def test_no_false_digits_on_noise_or_silence() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 4000, SAMPLE_RATE * 5).clip(-32768, 32767).astype("<i2").tobytes()
    assert _detect(noise) == []
    assert _detect(silence(SAMPLE_RATE * 2)) == []


def test_digit_in_speech_level_noise_is_still_found() -> None:
    rng = np.random.default_rng(5)
    tone = np.frombuffer(GAP + dtmf_tone("8", 0.2) + GAP, dtype="<i2").astype(np.int32)
    noisy = (tone + rng.normal(0, 1500, len(tone))).clip(-32768, 32767).astype("<i2")
    assert [e.digit for e in _detect(noisy.tobytes())] == ["8"]


def test_a_gap_in_media_time_restarts_cleanly() -> None:
    detector = InbandDetector()
    first = detector.feed(dtmf_tone("4", 0.1), 0.0)
    # lost packets: the next audio starts 0.5 s later; a half tone before it is dropped
    second = detector.feed(GAP + dtmf_tone("6", 0.1) + GAP, 0.6)
    assert [e.digit for e in first + second] == ["4", "6"]
    assert second[0].media_time == pytest.approx(0.7, abs=0.011)


def test_dtmf_tone_has_the_two_frequencies() -> None:
    pcm = np.frombuffer(dtmf_tone("1", 1.0), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm))
    peaks = sorted(np.argsort(spectrum)[-2:])  # 1 Hz bins
    assert peaks == [697, 1209]
    with pytest.raises(DtmfError):
        dtmf_tone("E", 0.1)
