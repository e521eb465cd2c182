"""Where the measured worker's time goes: a py-spy ``--native --threads`` raw profile, summarised.

py-spy's native mode samples every thread, blocked or not, so each sample is
first sorted into one of three states by its stack:

- **idle**: waiting for work (the loop in ``epoll_wait``, a decoder thread or
  an executor thread waiting on its queue);
- **GIL wait**: stopped in ``pthread_cond_timedwait`` (or a mutex) on the way
  back from C code into Python, i.e. waiting for the interpreter lock;
- **working**: anything else.

Working samples are then put in a category: walking from the innermost frame
outwards, the first frame that belongs to a known component decides
(:data:`RULES`); generic frames (libc, asyncio, numpy, PyAV internals) are
passed over, so ``sendto`` called by aioice counts as aioice, and Opus inside
PyAV counts as the aiortc codec that called it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RULES: tuple[tuple[str, str], ...] = (
    ("pylibsrtp", "SRTP protect/unprotect (pylibsrtp)"),
    ("OpusEncoder.encode", "Opus encode, per call (executor threads)"),
    ("OpusDecoder.decode", "Opus decode (aiortc decoder threads)"),
    ("compute_audio_level_dbov", "audio level of each sent frame (aiortc, pure Python)"),
    ("run_in_executor", "executor hop for the per-call encoder (submit, wake-up)"),
    ("Queue.put (queue.py", "encoded frame hand-off to the decoder thread (queue.put)"),
    ("run_coroutine_threadsafe", "decoded frame hand-off to the loop (call_soon_threadsafe)"),
    ("_call_set_state", "executor result hand-off to the loop"),
    ("worker/media/dtmf.py", "in-band DTMF detector (ours)"),
    ("worker/media/recorder.py", "WAV recorder (ours)"),
    ("pcm_to_frame", "prompt frame building, av.AudioFrame per frame (ours)"),
    ("worker/media/audio.py", "mono downmix of received audio (ours)"),
    ("worker/media/rtp_tap.py", "RTP telephone-event tap (ours)"),
    ("worker/media/playback.py", "prompt track (ours)"),
    ("worker/media/opus.py", "prompt track (ours)"),
    ("worker/media/session.py", "session consumer (ours)"),
    ("BareTrack", "bare prompt track (baseline)"),
    ("BareCall", "bare consumer + wave (baseline)"),
    ("bench/media_probe.py", "benchmark probes"),
    ("aiortc/jitterbuffer.py", "jitter buffer (aiortc)"),
    ("aiortc/rtp.py", "RTP/RTCP packet parse/serialise (aiortc)"),
    ("aiortc/rtcrtpreceiver.py", "RTP receiver (aiortc)"),
    ("aiortc/rtcrtpsender.py", "RTP sender (aiortc)"),
    ("aiortc/rtcdtlstransport.py", "DTLS transport, RTP/RTCP demux (aiortc)"),
    ("aiortc/", "aiortc, other"),
    ("aioice", "ICE connection, UDP send/receive (aioice)"),
)

IDLE_MARKERS = ("epoll_wait", "Queue.get (queue.py", "_queue_SimpleQueue_get")
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "Selector.select (selectors.py")
"""Innermost Python frames that mean waiting when py-spy shows no C frames."""
WAIT_LEAVES = ("pthread_cond_timedwait", "pthread_mutex_lock", "sem_wait")


@dataclass
class Profile:
    rate: int
    states: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(thread group, state) -> samples."""
    categories: Counter[str] = field(default_factory=Counter)
    loop_categories: Counter[str] = field(default_factory=Counter)
    """The same, for the event-loop thread alone."""
    leaves: Counter[str] = field(default_factory=Counter)
    """Innermost Python or named native frame of working samples."""

    @property
    def working(self) -> int:
        return sum(n for (_, state), n in self.states.items() if state == "working")


def thread_group(name: str) -> str:
    if "MainThread" in name:
        return "event loop thread"
    if "audio-decoder" in name:
        return "decoder threads"
    if "asyncio_" in name:
        return "executor threads"
    return "other threads"


def state_of(frames: list[str]) -> str:
    text = ";".join(frames)
    if any(marker in text for marker in IDLE_MARKERS):
        return "idle"
    if any(leaf in frames[-1] for leaf in IDLE_LEAVES):
        return "idle"
    tail = [frame for frame in frames[-4:] if not frame.startswith("0x")]
    if tail and any(tail[-1].startswith(leaf) for leaf in WAIT_LEAVES):
        return "GIL wait"
    return "working"


def category_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for marker, category in RULES:
            if marker in frame:
                return category
    if any("asyncio" in frame for frame in frames):
        return "event loop, tasks, futures (asyncio)"
    return "other"


def leaf_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        if not frame.startswith("0x") and "(libc.so" not in frame:
            name, _, where = frame.partition(" (")
            return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name
    return frames[-1]


def load(path: Path, rate: int) -> Profile:
    profile = Profile(rate)
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        thread, *frames = stack.split(";")
        if not frames:
            continue
        state = state_of(frames)
        group = thread_group(thread)
        profile.states[(group, state)] += samples
        if state == "working":
            category = category_of(frames)
            profile.categories[category] += samples
            if group == "event loop thread":
                profile.loop_categories[category] += samples
            profile.leaves[leaf_of(frames)] += samples
    return profile


def summarize(
    path: Path,
    rate: int,
    seconds: float,
    *,
    native: bool = True,
    cores: float | None = None,
    top: int = 15,
) -> str:
    """A text report: thread states, then categories and leaf functions of working samples.

    Without ``native``, py-spy leaves idle threads out itself and cannot see
    GIL waits, so those columns stay near zero. ``cores``, the process's
    measured CPU share in the same window, turns each share into cores; a
    sampler misses samples on a loaded machine, so that is better than
    counting samples.
    """
    profile = load(path, rate)
    working = profile.working
    if not working:
        return f"{path}: no working samples"
    mode = "--native" if native else "Python frames"
    lines = [f"py-spy {mode}, {rate} Hz, {seconds:g} s; samples per thread group and state"]
    lines.append(f"(one busy core for the whole time = {rate * seconds:g} samples):")
    for group in ("event loop thread", "decoder threads", "executor threads", "other threads"):
        parts = [
            f"{state} {profile.states[(group, state)]}" for state in ("working", "GIL wait", "idle")
        ]
        lines.append(f"  {group:<18} " + ", ".join(parts))
    scale = cores / working if cores is not None else 1.0 / rate / seconds
    lines.append(f"working samples by component ({working} = 100 %): share, cores, on the loop")
    for name, count in profile.categories.most_common():
        on_loop = profile.loop_categories[name] / count
        lines.append(f"  {count / working:6.1%}  {count * scale:5.3f}  {on_loop:4.0%}  {name}")
    lines.append(f"top {top} innermost frames of working samples:")
    for name, count in profile.leaves.most_common(top):
        lines.append(f"  {count / working:6.1%}  {name}")
    return "\n".join(lines)
