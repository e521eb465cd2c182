"""Answer latency: from an ``incoming`` webhook at the ingress to the answer request at gotosim.

Run: ``.venv/bin/python -m bench.answer_latency`` (``--help`` for the options).

It starts the whole system for real, as ``callworker up`` does
(:class:`worker.up.System` in a temporary data folder, sandbox mode): a
private redis-server, gotosim with the aiortc far end, the ingress, one
worker node and the beat, each a child process. Then, for each rate, it
places inbound calls through ``POST /_sim/calls`` at that fixed rate (open
loop: a call is placed on schedule whether or not the earlier ones were
answered), each with a short caller script (``{"hangup_at": ...}``), so calls
end on their own and the node stays under its maximum of live calls.

Both timestamps come from gotosim, on one clock (``time.time()`` in the
sandbox process, kept and shown to the microsecond):

- ``GET /_sim/notifications``: each ``incoming`` with its delivery attempts;
  an attempt's ``time`` is taken just before gotosim POSTs it to the ingress,
  its ``durationMs`` is the whole round trip until the ingress's reply (the
  ingress's share, network and gotosim's client included);
- ``GET /_sim/requests``: each API request with the ``time`` gotosim's edge
  had read its body.

Latency is ``answer request time - time of the delivery attempt the ingress
accepted``. Calls placed in the first ``--warmup`` seconds of each rate are
left out. Calls that got no answer request (overflow to voicemail, errors,
expired tasks) are counted and listed with what the node decided.

``--hops`` also reads the worker node's log (INFO, millisecond timestamps) for
each call's "recorded" and "decision" lines, and splits the latency into:
ingress round trip, webhook reply to task recorded (queue, task start,
store writes), recorded to decision, decision to answer request (ownership
claim, media hand-off, SDP offer, HTTP). Log times are wall-clock times of
the same machine, to the millisecond.

``--wire`` (root, or CAP_NET_RAW) also timestamps the packets themselves:
an AF_PACKET socket on ``lo`` with a BPF filter for TCP to and from the
ingress and gotosim ports, kernel receive times (``SO_TIMESTAMPNS``). It gives
when each ``incoming`` reached the ingress's socket, when the ingress's reply
left, and when each answer request reached gotosim's socket, free of either
process's event-loop lag (gotosim runs the far ends of every live call on the
loop that stamps its own times). Run it in a private network namespace
(``unshare --net``, as ``scripts/pytest`` does) so it sees nothing else.

The machine may be shared: for each rate it also reports the CPU of every
child process and of the whole machine (``/proc/stat``), and what is left of
the latter once this benchmark's processes are taken out ("others").
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from worker.config import Settings
from worker.store import Store
from worker.up import System, free_port

ANSWER = re.compile(r"^/web-calls/v1/calls/([^/]+)/answer$")
REJECT = re.compile(r"^/web-calls/v1/calls/([^/]+)/reject$")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+\s+\S+ \[call=([^\]]+)\] (.*)$")
FINAL_STATES = ("ended", "failed")
WIRE_CALL_ID = re.compile(rb'"callId":\s*"([^"]+)"')
WIRE_ANSWER = re.compile(rb"^POST /web-calls/v1/calls/([^/ ]+)/answer ")
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003
MACHINE = "whole machine"
OTHERS = "others (not this benchmark)"


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 values is the largest or next)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class Placed:
    """One call this benchmark placed."""

    index: int
    offset: float  # seconds after the phase started, as scheduled
    call_id: str = ""
    error: str = ""
    place_ms: float | None = None  # POST /_sim/calls round trip: how busy gotosim's loop is


@dataclass
class CallTimes:
    """What gotosim (and the node's log and store) say about one call."""

    call_id: str
    webhook_at: float | None = None
    attempts: int = 0
    ingress_ms: float | None = None
    queued_ms: float | None = None  # gotosim's own delay: notification made -> first attempt
    answer_at: float | None = None
    answer_status: int | None = None
    rejected: bool = False
    answered_at: float | None = None
    ended_at: float | None = None
    sim_outcome: str = ""
    store_state: str = ""
    store_reason: str = ""
    recorded_at: float | None = None
    decided_at: float | None = None
    wire_webhook_at: float | None = None  # the incoming's body reached the ingress's socket
    wire_reply_at: float | None = None  # the ingress's reply left
    wire_answer_at: float | None = None  # the answer request reached gotosim's socket

    @property
    def wire_latency_ms(self) -> float | None:
        if self.wire_webhook_at is None or self.wire_answer_at is None:
            return None
        return (self.wire_answer_at - self.wire_webhook_at) * 1000

    @property
    def wire_ingress_ms(self) -> float | None:
        if self.wire_webhook_at is None or self.wire_reply_at is None:
            return None
        return (self.wire_reply_at - self.wire_webhook_at) * 1000

    @property
    def latency_ms(self) -> float | None:
        if self.webhook_at is None or self.answer_at is None:
            return None
        return (self.answer_at - self.webhook_at) * 1000


@dataclass
class PhaseResult:
    rate: float
    seconds: float
    warmup: float
    placed: list[Placed]
    calls: dict[str, CallTimes]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    cpu: dict[str, float] = field(default_factory=dict)  # child name -> % of one core

    def measured(self) -> list[CallTimes]:
        return [
            self.calls[p.call_id]
            for p in self.placed
            if p.call_id and p.offset >= self.warmup and p.call_id in self.calls
        ]

    def peak_live(self) -> int:
        """Most calls connected at once at gotosim (answered, not yet ended)."""
        edges: list[tuple[float, int]] = []
        for call in self.calls.values():
            if call.answered_at is not None:
                edges.append((call.answered_at, 1))
                edges.append((call.ended_at or float("inf"), -1))
        live = peak = 0
        for _, step in sorted(edges):
            live += step
            peak = max(peak, live)
        return peak


def port_filter(ingress: int, sim: int) -> bytes:
    """Classic BPF for ``lo``: IPv4 TCP to ``ingress`` or ``sim``, or from ``ingress``."""
    program = [
        (0x28, 0, 0, 12),  # ldh [12]: ethertype
        (0x15, 0, 9, 0x0800),  # IPv4, else drop
        (0x30, 0, 0, 23),  # ldb [23]: IP protocol
        (0x15, 0, 7, 6),  # TCP, else drop
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): IP header length
        (0x48, 0, 0, 16),  # ldh [x+16]: destination port
        (0x15, 3, 0, ingress),
        (0x15, 2, 0, sim),
        (0x48, 0, 0, 14),  # ldh [x+14]: source port
        (0x15, 0, 1, ingress),
        (0x06, 0, 0, 262_144),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


class WireTap:
    """Kernel timestamps of webhooks, ingress replies and answer requests on ``lo``."""

    def __init__(self, ingress_port: int, sim_port: int) -> None:
        self.ingress_port = ingress_port
        self.sim_port = sim_port
        self.webhooks: dict[str, float] = {}
        self.replies: dict[str, float] = {}
        self.answers: dict[str, float] = {}
        self._waiting: dict[int, str] = {}  # gotosim's client port -> call id awaiting reply
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        code = port_filter(ingress_port, sim_port)
        self._code = ctypes.create_string_buffer(code)  # must outlive the setsockopt call
        fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(self._code))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name="wiretap", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _run(self) -> None:
        size = struct.calcsize("qq")
        while not self._stop.is_set():
            try:
                data, ancillary, _, address = self._sock.recvmsg(262_144, socket.CMSG_SPACE(size))
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == PACKET_OUTGOING:  # lo shows each packet leaving and arriving
                continue
            at = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanos = struct.unpack("qq", value[:size])
                    at = seconds + nanos / 1e9
            self._packet(data, at)

    def _packet(self, data: bytes, at: float) -> None:
        ihl = (data[14] & 0x0F) * 4
        total = struct.unpack("!H", data[16:18])[0]
        tcp = 14 + ihl
        source, destination = struct.unpack("!HH", data[tcp : tcp + 4])
        payload = data[tcp + (data[tcp + 12] >> 4) * 4 : 14 + total]
        if not payload:
            return
        if destination == self.ingress_port:
            match = WIRE_CALL_ID.search(payload)
            if match is not None and b'"incoming"' in payload:
                call_id = match.group(1).decode()
                self.webhooks.setdefault(call_id, at)
                self._waiting[source] = call_id
        elif source == self.ingress_port and payload.startswith(b"HTTP/1.1 "):
            waiting = self._waiting.pop(destination, None)
            if waiting is not None:
                self.replies.setdefault(waiting, at)
        elif destination == self.sim_port:
            answer = WIRE_ANSWER.match(payload)
            if answer is not None:
                self.answers.setdefault(answer.group(1).decode(), at)

    def fill(self, calls: dict[str, CallTimes]) -> None:
        for call_id, call in calls.items():
            call.wire_webhook_at = self.webhooks.get(call_id)
            call.wire_reply_at = self.replies.get(call_id)
            call.wire_answer_at = self.answers.get(call_id)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (``/proc/stat``: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(system: System) -> dict[str, float]:
    """CPU seconds so far of each child, this process (``bench``) and the whole machine."""
    out = {
        child.name: cpu_seconds(child.process.pid)
        for child in system.children
        if child.process is not None
    }
    out["bench"] = cpu_seconds(os.getpid())
    out[MACHINE] = machine_busy_seconds()
    return out


async def place_calls(
    sim: str, extension: str, rate: float, seconds: float, script: dict[str, Any], first: int
) -> list[Placed]:
    """Place ``rate * seconds`` calls on a fixed schedule, never waiting for earlier ones."""
    count = round(rate * seconds)
    placed = [Placed(first + i, i / rate) for i in range(count)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=sim, timeout=30, limits=limits) as client:

        async def one(item: Placed) -> None:
            body = {
                "extension": extension,
                "number": f"+1514555{item.index % 10_000:04d}",
                "name": f"Bench {item.index}",
                "script": script,
            }
            sent = time.monotonic()
            try:
                response = await client.post("/_sim/calls", json=body)
            except httpx.HTTPError as exc:
                item.error = f"{type(exc).__name__}: {exc}"
                return
            item.place_ms = (time.monotonic() - sent) * 1000
            if response.status_code != 201:
                item.error = f"{response.status_code} {response.text[:200]}"
                return
            item.call_id = str(response.json()["id"])

        start = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for item in placed:
            delay = start + item.offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing: the schedule is what is measured against
            tasks.append(asyncio.create_task(one(item)))
        await asyncio.gather(*tasks)
    return placed


def wait_finished(
    http: httpx.Client, store: Store, call_ids: list[str], timeout: float
) -> list[str]:
    """Wait until gotosim ended every call and the store has a final state; return stragglers."""
    deadline = time.monotonic() + timeout
    pending = set(call_ids)
    while pending and time.monotonic() < deadline:
        ended = {c["id"] for c in http.get("/_sim/calls").json()["items"] if c["state"] == "ENDED"}
        for call_id in list(pending & ended):
            detail = store.get_call(call_id)
            if detail is None or detail.call.state in FINAL_STATES:
                pending.discard(call_id)
        if pending:
            time.sleep(0.5)  # polling interval while calls finish on their own
    return sorted(pending)


def collect(http: httpx.Client, store: Store, call_ids: set[str]) -> dict[str, CallTimes]:
    """Join gotosim's notifications, requests and calls, and the store, per call id."""
    calls = {call_id: CallTimes(call_id) for call_id in call_ids}
    for note in http.get("/_sim/notifications", params={"type": "incoming"}).json()["items"]:
        call = calls.get(note.get("callId", ""))
        if call is None or not note["attempts"]:
            continue
        call.attempts = len(note["attempts"])
        call.queued_ms = (epoch(note["attempts"][0]["time"]) - epoch(note["createdAt"])) * 1000
        accepted = [a for a in note["attempts"] if 200 <= a.get("status", 0) < 300]
        if accepted:
            call.webhook_at = epoch(accepted[0]["time"])
            call.ingress_ms = float(accepted[0]["durationMs"])
    requests = http.get("/_sim/requests", params={"method": "POST"}).json()["items"]
    for request in requests:
        if (match := ANSWER.match(request["path"])) and match.group(1) in calls:
            call = calls[match.group(1)]
            if call.answer_at is None:
                call.answer_at = epoch(request["time"])
                call.answer_status = int(request["status"])
        elif (match := REJECT.match(request["path"])) and match.group(1) in calls:
            calls[match.group(1)].rejected = True
    for sim_call in http.get("/_sim/calls").json()["items"]:
        call = calls.get(sim_call["id"])
        if call is None:
            continue
        call.sim_outcome = str(sim_call.get("outcome", sim_call["state"]))
        if sim_call.get("answeredAt"):
            call.answered_at = epoch(sim_call["answeredAt"])
        if sim_call.get("endedAt"):
            call.ended_at = epoch(sim_call["endedAt"])
    for call in calls.values():
        detail = store.get_call(call.call_id)
        if detail is not None:
            record = detail.call
            call.store_state = f"{record.state}/{record.outcome or '-'}"
            call.store_reason = str((record.flow or {}).get("reason", record.reason_code or ""))
    return calls


def read_hops(log_path: Path, calls: dict[str, CallTimes]) -> None:
    """Fill ``recorded_at`` and ``decided_at`` from the worker node's log lines."""
    for line in log_path.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match is None or match.group(2) not in calls:
            continue
        call = calls[match.group(2)]
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        message = match.group(3)
        if message.startswith("incoming call from") and call.recorded_at is None:
            call.recorded_at = at
        elif message.startswith("decision:") and call.decided_at is None:
            call.decided_at = at


def stats(values: list[float]) -> str:
    if not values:
        return "- | - | -"
    return " | ".join(
        f"{v:.1f}" for v in (statistics.median(values), percentile(values, 0.99), max(values))
    )


def loads(load: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in load)


def report(results: list[PhaseResult], hops: bool) -> list[str]:
    """Markdown tables: latency per rate, unanswered calls, CPU per process, hops."""
    out = [
        "| calls/s | placed | measured | answered | not answered | p50 ms | p99 ms | max ms "
        "| ingress p50 ms | ingress p99 ms | place call p99 ms | peak live | load before "
        "| load after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        measured = r.measured()
        latencies = [c.latency_ms for c in measured if c.latency_ms is not None]
        ingress = [c.ingress_ms for c in measured if c.ingress_ms is not None]
        unanswered = len(measured) - len(latencies)
        place = [p.place_ms for p in r.placed if p.place_ms is not None and p.offset >= r.warmup]
        place_p99 = f"{percentile(place, 0.99):.1f}" if place else "-"
        ingress_cells = (
            f"{statistics.median(ingress):.1f} | {percentile(ingress, 0.99):.1f}"
            if ingress
            else "- | -"
        )
        out.append(
            f"| {r.rate:g} | {len(r.placed)} | {len(measured)} | {len(latencies)} | {unanswered} "
            f"| {stats(latencies)} | {ingress_cells} | {place_p99} | {r.peak_live()} "
            f"| {loads(r.load_before)} | {loads(r.load_after)} |"
        )
    failures = [
        (r.rate, p.index, p.error or "", r.calls.get(p.call_id))
        for r in results
        for p in r.placed
        if p.error or (p.call_id in r.calls and r.calls[p.call_id].latency_ms is None)
    ]
    failures += [
        (r.rate, p.index, f"answer request got {c.answer_status}", c)
        for r in results
        for p in r.placed
        if (c := r.calls.get(p.call_id)) is not None and c.answer_status not in (None, 200)
    ]
    out += ["", f"Calls not answered or with errors: {len(failures)}"]
    if failures:
        kinds = Counter(
            (rate, c.sim_outcome if c else "-", c.store_reason if c else error)
            for rate, _, error, c in failures
        )
        out += ["", "| calls/s | gotosim outcome | node's reason | calls |", "|---:|---|---|---:|"]
        out += [f"| {rate:g} | {o} | {why} | {n} |" for (rate, o, why), n in kinds.items()]
    if any(c.wire_latency_ms is not None for r in results for c in r.measured()):
        out += [
            "",
            "On the wire (kernel packet times on lo; no event loop in between):",
            "",
            "| calls/s | answered | p50 ms | p99 ms | max ms | ingress p50 ms | ingress p99 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results:
            wire = [c.wire_latency_ms for c in r.measured() if c.wire_latency_ms is not None]
            share = [c.wire_ingress_ms for c in r.measured() if c.wire_ingress_ms is not None]
            cells = " | ".join(stats(share).split(" | ")[:2]) if share else "- | -"
            out.append(f"| {r.rate:g} | {len(wire)} | {stats(wire)} | {cells} |")
    names = sorted({name for r in results for name in r.cpu} - {MACHINE, OTHERS})
    names += [MACHINE, OTHERS]
    out += [
        "",
        f"CPU while each rate ran (placing and settling), % of one core ({os.cpu_count()} cores):",
        "",
    ]
    out += [f"| calls/s | {' | '.join(names)} |", "|---:|" + "---:|" * len(names)]
    out += [
        f"| {r.rate:g} | " + " | ".join(f"{r.cpu.get(n, 0.0):.0f}" for n in names) + " |"
        for r in results
    ]
    if hops:
        out += ["", "Where the time went (p50 / p99 / max, ms; worker log times are to the ms):"]
        out += [
            "",
            "| calls/s | ingress round trip | reply to task recorded | recorded to decision "
            "| decision to answer request |",
            "|---:|---|---|---|---|",
        ]
        for r in results:
            parts: list[list[float]] = [[], [], [], []]
            for c in r.measured():
                if None in (c.webhook_at, c.ingress_ms, c.recorded_at, c.decided_at, c.answer_at):
                    continue
                assert c.webhook_at is not None and c.ingress_ms is not None
                assert c.recorded_at is not None and c.decided_at is not None
                assert c.answer_at is not None
                replied = c.webhook_at + c.ingress_ms / 1000
                parts[0].append(c.ingress_ms)
                parts[1].append((c.recorded_at - replied) * 1000)
                parts[2].append((c.decided_at - c.recorded_at) * 1000)
                parts[3].append((c.answer_at - c.decided_at) * 1000)
            cells = " | ".join(stats(p).replace(" | ", " / ") for p in parts)
            out.append(f"| {r.rate:g} | {cells} |")
    return out


def profile_children(system: System, folder: Path, label: str, seconds: float) -> list[Any]:
    """Start py-spy (non-blocking sampling, raw collapsed stacks) on each child for ``seconds``."""
    found = Path(sys.executable).parent / "py-spy"
    spy = str(found) if found.exists() else shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    procs = []
    for child in system.children:
        if child.process is None or child.name in ("redis", "beat"):
            continue
        out = folder / f"{child.name}-{label}.txt"
        argv = [spy, "record", "--pid", str(child.process.pid), "--duration"]
        argv += [str(max(1, int(seconds))), "--rate", "200", "--nonblocking", "--threads"]
        argv += ["--format", "raw", "--output", str(out)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def run(args: argparse.Namespace, data_dir: Path) -> list[PhaseResult]:
    env = {
        "CALLWORKER_DATA_DIR": str(data_dir),
        "CALLWORKER_RECORD_SECONDS": str(args.record_seconds),
        "CALLWORKER_MAX_LIVE_CALLS": str(args.max_live_calls),
        "CALLWORKER_LOG_LEVEL": args.log_level,
    }
    if args.max_loop_lag_ms is not None:
        env["CALLWORKER_MAX_LOOP_LAG_MS"] = str(args.max_loop_lag_ms)
    system = System(Settings.from_env(env), ingress_port=free_port(), drain_seconds=5)
    results: list[PhaseResult] = []
    try:
        system.start()
        for number in range(2, args.nodes + 1):
            system.add_worker(f"node{number}")
        print("\n".join(system.lines()), flush=True)
        http = httpx.Client(base_url=system.sandbox_url, timeout=60)
        store = Store(system.settings.effective_database_url)
        extension = system.settings.extensions[0] if system.settings.extensions else "1000"
        tap = None
        if args.wire:
            sim_port = httpx.URL(system.sandbox_url).port
            assert sim_port is not None
            tap = WireTap(system.settings.ingress_port, sim_port)
        script = {"hangup_at": args.hangup_at}
        first = 0
        # The node's loop-lag signal covers the last LAG_WINDOW * LAG_INTERVAL seconds and
        # includes its own start-up; calls placed before that has passed go to overflow.
        time.sleep(args.quiet)
        for rate in args.rates:
            print(f"placing {rate:g} calls/s for {args.seconds:g} s ...", flush=True)
            load_before = os.getloadavg()
            cpu_before, started = cpu_snapshot(system), time.monotonic()
            spies = (
                profile_children(system, args.profile, f"{rate:g}cps", args.seconds)
                if args.profile
                else []
            )
            placed = asyncio.run(
                place_calls(system.sandbox_url, extension, rate, args.seconds, script, first)
            )
            first += len(placed)
            ids = [p.call_id for p in placed if p.call_id]
            stragglers = wait_finished(http, store, ids, timeout=args.settle)
            if stragglers:
                print(f"  {len(stragglers)} calls had not finished after {args.settle:g} s")
            for spy in spies:
                spy.wait(timeout=60)
            elapsed = time.monotonic() - started
            cpu_after = cpu_snapshot(system)
            cpu = {
                name: 100 * (cpu_after.get(name, 0.0) - value) / elapsed
                for name, value in cpu_before.items()
            }
            ours = sum(value for name, value in cpu.items() if name != MACHINE)
            cpu[OTHERS] = max(0.0, cpu[MACHINE] - ours)
            calls = collect(http, store, set(ids))
            if args.hops:
                for child in system.children:
                    if child.name.startswith("worker-"):
                        read_hops(child.log_path, calls)
            if tap is not None:
                tap.fill(calls)
            results.append(
                PhaseResult(
                    rate,
                    args.seconds,
                    args.warmup,
                    placed,
                    calls,
                    load_before,
                    os.getloadavg(),
                    cpu,
                )
            )
        http.close()
        if tap is not None:
            tap.close()
    finally:
        system.stop()
    return results


def rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rates", type=rates, default=[1.0, 10.0], help="calls/s, e.g. 1,10")
    parser.add_argument("--seconds", type=float, default=30.0, help="placing time per rate")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out per rate")
    parser.add_argument("--hangup-at", type=float, default=1.0, help="caller hangs up (media s)")
    parser.add_argument("--record-seconds", type=int, default=1, help="CALLWORKER_RECORD_SECONDS")
    parser.add_argument("--max-live-calls", type=int, default=40, help="per node")
    parser.add_argument("--nodes", type=int, default=1, help="worker nodes (processes)")
    parser.add_argument("--max-loop-lag-ms", type=float, default=None, help="default: settings")
    parser.add_argument("--log-level", default="INFO", help="every callworker process's level")
    parser.add_argument("--quiet", type=float, default=6.0, help="idle seconds after start")
    parser.add_argument("--settle", type=float, default=90.0, help="max wait for calls to end")
    parser.add_argument("--hops", action="store_true", help="split latency using the node log")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles per rate, into DIR")
    parser.add_argument("--wire", action="store_true", help="also time packets on lo (root)")
    parser.add_argument("--dump", type=Path, help="write every call's times as JSON lines")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs)")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix="callworker-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        results = run(args, data_dir)
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="callworker-bench-kept-"))
            subprocess.run(["cp", "-a", str(data_dir), str(kept)], check=True)
            print(f"data folder kept in {kept / 'data'}")
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print()
    print(f"started {started:%Y-%m-%d %H:%M %Z}; {os.cpu_count()} CPUs")
    print(f"uptime before: {uptime_before}")
    print(f"uptime after:  {uptime_after}")
    print(
        f"script hangup_at {args.hangup_at:g} s, record {args.record_seconds} s, "
        f"{args.nodes} node(s), max live calls {args.max_live_calls}, "
        f"warm-up {args.warmup:g} s left out, "
        f"log level {args.log_level}"
    )
    print()
    print("\n".join(report(results, args.hops)))
    if args.dump:
        with args.dump.open("w") as out:
            for r in results:
                for p in r.placed:
                    call = r.calls.get(p.call_id)
                    row = {"rate": r.rate, **dataclasses.asdict(p)}
                    row.update(dataclasses.asdict(call) if call is not None else {})
                    out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
