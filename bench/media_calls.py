"""Media benchmark: N concurrent calls in one worker process, against bare aiortc.

Run: ``.venv/bin/python -m bench.media_calls`` (``make bench``; ``--help`` for
the options). Defaults: N = 10, 20, 30, 40; for each N the three variants of
:mod:`bench.media_worker` (``bare`` aiortc, callworker's ``session``, and the
session with the prompt ``encoded`` to Opus once); a 3 s warm-up and a 20 s
measured window per run. About 30 s per run, 12 runs: 6 to 9 minutes (the
wait for a quiet machine is at most 15 s per run).

Each run has two fresh processes, both started here:

- the far ends (:mod:`bench.media_farend`): N aiortc answerers that play a
  caller's audio in a loop and count what they hear;
- the worker (:mod:`bench.media_worker`), the measured process: N calls that
  each play a prompt in a loop and record the far end.

They signal over a local TCP connection and carry media over loopback UDP;
every candidate is 127.0.0.1. Variants alternate within each N so machine
noise hits them alike. A run that does not finish in time is killed.

Columns (all over the measured window, in the worker process):

- ``cpu/call``: process CPU seconds (every thread) per call-second;
  ``x bare``: that against the bare run with the same N;
- ``loop``: the event-loop thread's CPU share (100 % = the loop is saturated);
- ``lag p50/p99/max``: event-loop lag from a 10 ms probe, in ms;
- ``media``: the worst call's media time sent (RTP packets x 20 ms) over wall
  time; below 1 the playback stretches;
- ``late``: RTP packets handed to the transport more than 20 ms behind their
  schedule, all calls; ``worst``: the worst such delay in ms;
- ``gaps``: 20 ms frames missing in what the worker received / what the far
  ends received (RTP timestamps);
- ``rss/call``: (RSS at the end of the window - RSS before the first call) / N;
- ``far lag``/``far cpu``: the far-end process's loop lag p99 and CPU share;
- ``others``: cores used by every other process on the machine meanwhile
  (``/proc/stat`` minus both processes): other people's load. Before each
  run the benchmark waits (``--quiet``, ``--max-wait``) until that load is low.

``--profile FILE`` adds one more, unreported run of one variant and N,
sampled with py-spy during its window, and prints where the time went
(:mod:`bench.media_profile`). ``--native`` samples C frames too, but py-spy
then pauses the process for every sample, which distorts the run.

``--variants`` also takes ``session-nodtmf``, ``session-norec`` and
``encoded-nodtmf``: the same session without the in-band DTMF detector or
without recording, to cost those features by difference.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ROOT / "audio_prompts" / "after_hours.wav"
CALLER = ROOT / "audio_prompts" / "menu.wav"
START_DEADLINE = 30.0
"""Seconds a process may take to start (imports on a loaded machine)."""
SLACK = 90.0
"""Seconds a run may take beyond warm-up + window (set-up, close) before it is killed."""

TARGET_LAG_P99_MS = 10.0
TARGET_CPU_RATIO = 1.1
NO_STRETCH = 0.995
"""Worst call's media/wall at or above this is "no stretch" (1 frame in 20 s is 0.999)."""


def read_line(stream: IO[str], deadline: float) -> str:
    """The next line of a child's stdout, or TimeoutError once ``deadline`` passes."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the child process did not answer in time")
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            line = stream.readline()
            if not line:
                raise EOFError("the child process exited early")
            return line.rstrip("\n")


def stop(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """Wait for a child we started; kill it (by its own pid) if it does not exit in time."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def others_busy(seconds: float) -> float:
    """Cores busy on the machine over ``seconds`` (call it while no run of ours is going)."""
    from bench.media_probe import machine_busy_seconds

    before, start = machine_busy_seconds(), time.monotonic()
    time.sleep(seconds)  # sampling the machine's load is the point of this wait
    return (machine_busy_seconds() - before) / (time.monotonic() - start)


def wait_for_quiet(threshold: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + max_wait
    busy = others_busy(2.0)
    while busy >= threshold and time.monotonic() < deadline:
        busy = others_busy(2.0)
    return busy


def run_one(
    variant: str,
    calls: int,
    args: argparse.Namespace,
    logs: Path,
    on_window: Callable[[int], subprocess.Popen[bytes]] | None = None,
) -> dict[str, Any]:
    """One run: fresh far-end and worker processes; the worker's result line as a dict."""
    python = sys.executable
    tag = f"{variant}-{calls}"
    with (
        open(logs / f"{tag}-farend.log", "w") as far_log,
        open(logs / f"{tag}-worker.log", "w") as worker_log,
    ):
        far = subprocess.Popen(
            [python, "-m", "bench.media_farend", "--caller", str(args.caller)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=far_log, text=True,
        )  # fmt: skip
        worker: subprocess.Popen[str] | None = None
        profiler: subprocess.Popen[bytes] | None = None
        try:
            assert far.stdout is not None
            port = int(read_line(far.stdout, time.monotonic() + START_DEADLINE).split()[1])
            worker = subprocess.Popen(
                [python, "-m", "bench.media_worker", "--variant", variant,
                 "--calls", str(calls), "--port", str(port), "--prompt", str(args.prompt),
                 "--window", str(args.window), "--warmup", str(args.warmup),
                 *(["--switch-interval", str(args.switch_interval)]
                   if args.switch_interval is not None else [])],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=worker_log, text=True,
            )  # fmt: skip
            assert worker.stdout is not None
            deadline = time.monotonic() + START_DEADLINE + args.warmup + args.window + SLACK
            while True:
                line = read_line(worker.stdout, deadline)
                if line == "window-start" and on_window is not None:
                    profiler = on_window(worker.pid)
                elif line.startswith("result "):
                    result: dict[str, Any] = json.loads(line.removeprefix("result "))
                    return result
        except (TimeoutError, EOFError) as exc:
            raise RuntimeError(f"run {tag} failed ({exc}); see the logs in {logs}") from exc
        finally:
            if profiler is not None:
                stop(profiler, grace=args.window + 30)
            if worker is not None:
                stop(worker)
            stop(far)


def others(r: dict[str, Any]) -> float:
    """Cores used by other processes on the machine during the window (clock-tick noise: >= 0)."""
    return max(0.0, float(r["machine_busy"] - r["busy"] - r["far"]["busy"]))


def add_ratios(results: list[dict[str, Any]]) -> None:
    bare = {r["calls"]: r["cpu_per_call_s"] for r in results if r["variant"] == "bare"}
    for r in results:
        base = bare.get(r["calls"])
        r["cpu_ratio"] = r["cpu_per_call_s"] / base if base else math.nan


def meets(r: dict[str, Any]) -> bool:
    """The issue's targets: lag p99 <= 10 ms, no stretch, no gaps, CPU <= 1.1 x bare."""
    return bool(
        r["lag_p99_ms"] <= TARGET_LAG_P99_MS
        and r["media_wall_min"] >= NO_STRETCH
        and r["late_packets"] == 0
        and r["received_missing_frames"] == 0
        and r["far"]["heard_missing_frames"] == 0
        and (r["variant"] == "bare" or r["cpu_ratio"] <= TARGET_CPU_RATIO)
    )


COLUMNS = (
    "variant", "N", "cpu/call s", "x bare", "loop %", "lag p50", "lag p99", "lag max",
    "media/wall", "late", "worst ms", "gaps rx/far", "rss/call MB", "far lag p99",
    "far cpu %", "others", "targets",
)  # fmt: skip


def cells(r: dict[str, Any]) -> list[str]:
    far = r["far"]
    return [
        r["variant"],
        str(r["calls"]),
        f"{r['cpu_per_call_s']:.4f}",
        f"{r['cpu_ratio']:.2f}",
        f"{r['loop_busy']:.0%}",
        f"{r['lag_p50_ms']:.1f}",
        f"{r['lag_p99_ms']:.1f}",
        f"{r['lag_max_ms']:.0f}",
        f"{r['media_wall_min']:.4f}",
        str(r["late_packets"]),
        f"{r['worst_lateness_ms']:.0f}",
        f"{r['received_missing_frames']}/{far['heard_missing_frames']}",
        f"{r['rss_per_call_mb']:.2f}",
        f"{far['lag_p99_ms']:.1f}",
        f"{far['busy']:.0%}",
        f"{others(r):.2f}",
        "met" if meets(r) else "missed",
    ]


def text_row(values: list[str]) -> str:
    widths = [max(8, len(c)) for c in COLUMNS]
    return " ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in results]
    return "\n".join(lines)


def uptime() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, load average {load}"


def describe(args: argparse.Namespace) -> str:
    import aioice
    import aiortc
    import av

    return (
        f"python {platform.python_version()}, aiortc {aiortc.__version__}, aioice "
        f"{aioice.__version__}, PyAV {av.__version__}; {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()})\nprompt {args.prompt.name} "
        f"(looped), caller {args.caller.name} (looped); warm-up {args.warmup:g} s, window "
        f"{args.window:g} s per run; calls {args.calls}; variants {','.join(args.variants)}"
    )


def profile_run(args: argparse.Namespace, logs: Path) -> None:
    """One more run of ``args.profile_variant`` at ``args.profile_calls``, sampled by py-spy."""
    from bench.media_profile import summarize

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    seconds = max(1, int(args.window) - 2)
    native = ["--native"] if args.native else ["--nonblocking"]

    def start(pid: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [spy, "record", *native, "--threads", "--format", "raw", "--rate",
             str(args.profile_rate), "--duration", str(seconds), "--pid", str(pid),
             "--output", str(args.profile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    result = run_one(args.profile_variant, args.profile_calls, args, logs, on_window=start)
    mode = "native" if args.native else "Python frames only, non-blocking"
    print(
        f"\nprofile ({mode}) of {args.profile_variant} at N={args.profile_calls}, written to "
        f"{args.profile}; that run (not in the table): cpu/call {result['cpu_per_call_s']:.4f} "
        f"s, loop {result['loop_busy']:.0%}, lag p99 {result['lag_p99_ms']:.1f} ms"
    )
    cores = None if args.native else result["busy"]
    print(summarize(args.profile, args.profile_rate, seconds, native=args.native, cores=cores))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", default="10,20,30,40", help="comma-separated N values")
    parser.add_argument("--variants", default="bare,session,encoded", help="comma-separated")
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after connect")
    parser.add_argument("--prompt", type=Path, default=PROMPT, help="what each call plays")
    parser.add_argument("--caller", type=Path, default=CALLER, help="what each far end plays")
    parser.add_argument(
        "--switch-interval", type=float, help="the worker's GIL switch interval (s)"
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.3,
        help="before each run, wait until other processes use under this many cores (0: no)",
    )
    parser.add_argument("--max-wait", type=float, default=15.0, help="the most to wait (s)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--profile", type=Path, metavar="FILE", help="py-spy one extra run")
    parser.add_argument("--profile-variant", default="session")
    parser.add_argument("--profile-calls", type=int, default=20)
    parser.add_argument("--profile-rate", type=int, default=100)
    parser.add_argument("--native", action="store_true", help="profile C frames too (pauses)")
    args = parser.parse_args()
    args.variants = args.variants.split(",")
    counts = [int(n) for n in args.calls.split(",") if n.strip()]

    print(describe(args))
    print(f"before: {uptime()}", flush=True)
    print(text_row(list(COLUMNS)), flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-media-logs-") as folder:
        logs = Path(folder)
        try:
            for calls in counts:
                for variant in args.variants:
                    quiet = wait_for_quiet(args.quiet, args.max_wait) if args.quiet else None
                    results.append(run_one(variant, calls, args, logs))
                    results[-1]["others_before"] = quiet
                    add_ratios(results)
                    print(text_row(cells(results[-1])), flush=True)
            if args.profile is not None:
                profile_run(args, logs)
        except RuntimeError as exc:
            for log in sorted(logs.iterdir()):
                tail = log.read_text().strip().splitlines()[-5:]
                if tail:
                    print(f"--- {log.name}:\n" + "\n".join(tail), file=sys.stderr)
            raise SystemExit(str(exc)) from exc
    print(f"after: {uptime()}\n")
    print(markdown(results))
    for variant in args.variants:
        good = [r["calls"] for r in results if r["variant"] == variant and meets(r)]
        print(f"{variant}: targets met at N = {good or 'none'}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
