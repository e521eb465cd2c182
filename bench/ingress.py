"""Ingress throughput: the real webhook ingress against a bare ASGI app, side by side.

Run: ``.venv/bin/python -m bench.ingress`` (``--help`` for the options).

Both servers are uvicorn in a subprocess with the settings ``callworker
ingress`` uses (one process, 127.0.0.1, access log off, no server header,
whatever HTTP parser and event loop uvicorn picks: the same for both). The
real one is ``create_app(Settings.from_env())`` on a private redis-server:
every request is parsed, deduplicated and enqueued onto the ``calls`` list as
a Celery task message. The bare one reads the body and answers 204.

The load comes from client processes that speak raw HTTP/1.1 over asyncio
sockets (keep-alive, one request in flight per connection, no HTTP
library), cheap enough per request to keep either server busy. Each sends
distinct ``incoming`` notifications (unique call ids, so none is a
duplicate) during a fixed window, bounded by a request count. Rounds
alternate bare and ingress so machine noise hits both alike.

Reported per run: requests per second, p50/p99 latency, the server's CPU per
request and how busy it was (near 100 % of a core means the server, not the
client, was the limit), the clients' CPU, and for the ingress the
redis-server's CPU per request. After each ingress run the ``calls`` list
must hold exactly one message per 204. ``--profile FILE`` adds one extra,
unreported ingress run sampled with py-spy and prints where its time went.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import importlib.util
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SECRET = "bench-secret-0123456789abcdef"
HOST = "127.0.0.1"
PATH = f"/webhooks/goto/{SECRET}"
STARTUP_ALLOWANCE = 2.0
PROFILE_RATE = 200


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that reads the request body and answers 204, nothing else."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def serve(kind: str, port: int) -> None:
    """Serve ``kind`` (``bare`` or ``ingress``) with the settings ``callworker ingress`` uses."""
    import uvicorn

    app: Any
    if kind == "bare":
        app = bare_app
    else:
        from worker import logs
        from worker.config import Settings
        from worker.ingress.app import create_app

        settings = Settings.from_env()
        logs.configure(settings.log_level)
        app = create_app(settings)
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        access_log=False,
        log_config=None,
        server_header=False,
        lifespan="on",
    )


# The body of an ``incoming`` notification, as GoTo sends it; %s: timestamp, call id.
BODY = json.dumps(
    {
        "source": "WebRTC",
        "type": "incoming",
        "timestamp": "%s",
        "usage": "VOIP",
        "ttl": "30",
        "content": {
            "sessionId": "bench-session",
            "organizationId": "bench-org",
            "extensionNumber": "0523",
            "callId": "%s",
            "name": "Bench",
            "number": "+15550000000",
        },
    }
).encode()
HEAD = (
    f"POST {PATH} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
    "content-length: %d\r\n\r\n"
).encode()


class _Run:
    """One client process's share of a run: its budget, its clock and what it saw."""

    def __init__(self, count: int, start: float, deadline: float) -> None:
        self.count = count
        self.start = start
        self.deadline = deadline
        self.sent = 0
        self.prefix = uuid.uuid4().hex[:10].encode()
        self.latencies = array.array("d")
        self.statuses: Counter[int] = Counter()
        self.last = start

    def next_request(self) -> bytes | None:
        now = time.perf_counter()
        if self.sent >= self.count or now >= self.deadline:
            return None
        self.sent += 1
        stamp = datetime.now(UTC).isoformat().encode()
        body = BODY % (stamp, self.prefix + b"-%d" % self.sent)
        return HEAD % len(body) + body

    def record(self, status: int, started: float) -> None:
        now = time.perf_counter()
        self.latencies.append(now - started)
        self.statuses[status] += 1
        self.last = now


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection with one request in flight at a time."""

    def __init__(self, run: _Run, done: asyncio.Future[None]) -> None:
        self.run = run
        self.done = done
        self.buffer = bytearray()
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self) -> None:
        assert self.transport is not None
        request = self.run.next_request()
        if request is None:
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(self.buffer[9:12])
            length = 0
            if status >= 200 and status not in (204, 304):
                head = bytes(self.buffer[:end]).lower()
                at = head.find(b"\r\ncontent-length:")
                if at < 0:
                    raise RuntimeError(f"response {status} without content-length: {head!r}")
                length = int(head[at + 17 :].split(b"\r\n", 1)[0])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self.run.record(status, self.started)
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _load(port: int, connections: int, run: _Run) -> None:
    loop = asyncio.get_running_loop()
    protocols: list[_Connection] = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        _, protocol = await loop.create_connection(
            lambda done=done: _Connection(run, done),  # type: ignore[misc]
            HOST,
            port,
        )
        protocols.append(protocol)
    # Pacing: every client process starts at the same instant.
    await asyncio.sleep(max(0.0, run.start - time.perf_counter()))
    for protocol in protocols:
        protocol.send()
    await asyncio.gather(*(p.done for p in protocols))


def _client(
    port: int, connections: int, count: int, start: float, deadline: float, out: Any
) -> None:
    """A client process: load the server, then report statuses, latencies and its own CPU."""
    run = _Run(count, start, deadline)
    cpu_before = time.process_time()
    asyncio.run(_load(port, connections, run))
    out.put(
        {
            "latencies": run.latencies.tobytes(),
            "statuses": dict(run.statuses),
            "last": run.last,
            "cpu": time.process_time() - cpu_before,
        }
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    round: int
    clients: int
    requests: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    server_cpu: float
    client_cpu: float
    redis_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, in microseconds."""
        return self.per_request_us(self.server_cpu)

    def per_request_us(self, cpu: float) -> float:
        return cpu / self.requests * 1e6 if self.requests else 0.0

    @property
    def server_busy(self) -> float:
        return self.server_cpu / self.elapsed if self.elapsed else 0.0

    @property
    def client_busy(self) -> float:
        return self.client_cpu / self.elapsed / self.clients if self.elapsed else 0.0


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    results: list[Result] = field(default_factory=list)


def run_load(
    server: Server,
    round_: int,
    args: argparse.Namespace,
    seconds: float,
    count: int,
    redis_pid: int | None,
) -> Result:
    """One measured run of ``seconds`` (at most ``count`` requests) against ``server``."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = time.perf_counter() + STARTUP_ALLOWANCE
    deadline = start + seconds
    per_client = max(1, count // args.clients)
    clients = [
        context.Process(
            target=_client,
            args=(server.port, args.connections, per_client, start, deadline, queue),
        )
        for _ in range(args.clients)
    ]
    cpu_before = cpu_seconds(server.process.pid)
    redis_before = cpu_seconds(redis_pid) if redis_pid else 0.0
    for process in clients:
        process.start()
    try:
        parts = _collect(queue, clients, time.monotonic() + STARTUP_ALLOWANCE + seconds + 60)
    finally:
        for process in clients:
            if process.is_alive():
                process.terminate()
            process.join(timeout=30)
    server_cpu = cpu_seconds(server.process.pid) - cpu_before
    redis_cpu = cpu_seconds(redis_pid) - redis_before if redis_pid else 0.0
    latencies = array.array("d")
    statuses: Counter[int] = Counter()
    for part in parts:
        latencies.frombytes(part["latencies"])
        statuses.update(part["statuses"])
    ordered = sorted(latencies)
    elapsed = max(part["last"] for part in parts) - start

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    return Result(
        name=server.kind,
        round=round_,
        clients=args.clients,
        requests=len(ordered),
        elapsed=elapsed,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        statuses=dict(statuses),
        server_cpu=server_cpu,
        client_cpu=sum(part["cpu"] for part in parts),
        redis_cpu=redis_cpu,
    )


def _collect(queue: Any, clients: list[Any], deadline: float) -> list[dict[str, Any]]:
    """Each client's report; fails early if a client died without one."""
    import queue as queues

    parts: list[dict[str, Any]] = []
    while len(parts) < len(clients):
        try:
            parts.append(queue.get(timeout=0.5))
        except queues.Empty:
            if time.monotonic() > deadline:
                raise RuntimeError("the load clients did not finish in time") from None
            dead = [p.exitcode for p in clients if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a load client failed (exit codes {dead})") from None
    return parts


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    import httpx

    path = "/healthz" if server.kind == "ingress" else "/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} server exited:\n{server.log_path.read_text()}")
        try:
            if httpx.get(f"http://{HOST}:{server.port}{path}", timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{server.kind} server did not come up within {timeout} s")


@contextmanager
def servers(args: argparse.Namespace, redis_url: str, workdir: Path) -> Iterator[list[Server]]:
    """Both servers, started and ready; stopped on exit."""
    from tests.helpers import env_without_callworker, free_port

    started: list[Server] = []
    try:
        for kind in ("bare", "ingress"):
            port = free_port()
            env = env_without_callworker()
            env.update(
                CALLWORKER_REDIS_URL=redis_url,
                CALLWORKER_WEBHOOK_SECRET=SECRET,
                CALLWORKER_DATA_DIR=str(workdir / "data"),
                CALLWORKER_LOG_LEVEL=args.log_level,
            )
            log_path = workdir / f"{kind}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "bench.ingress", "--serve", kind, "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            started.append(Server(kind, port, process, log_path))
        for server in started:
            _wait_ready(server)
        yield started
    finally:
        for server in started:
            server.process.terminate()
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def _check_queue(client: Any, result: Result, extra: int) -> None:
    """Every 204 the ingress gave (``extra``: warm-up ones) left exactly one message."""
    queued = int(client.llen("calls"))
    accepted = result.statuses.get(204, 0) + extra
    if queued != accepted:
        raise RuntimeError(f"ingress answered 204 {accepted} times but queued {queued} messages")
    client.delete("calls")


def bench(args: argparse.Namespace) -> list[Result]:
    import redis

    from tests.helpers import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingress-"))
    redis_server = RedisServer(workdir / "redis")
    client = redis.Redis.from_url(redis_server.url)
    results: list[Result] = []
    try:
        with servers(args, redis_server.url, workdir) as both:
            by_kind = {server.kind: server for server in both}
            warm: dict[str, int] = {}
            for server in both:
                result = run_load(server, 0, args, args.warmup, args.requests, None)
                warm[server.kind] = result.statuses.get(204, 0)
            for round_ in range(1, args.rounds + 1):
                for server in both:
                    redis_pid = redis_server.process.pid if server.kind == "ingress" else None
                    result = run_load(server, round_, args, args.seconds, args.requests, redis_pid)
                    results.append(result)
                    if server.kind == "ingress":
                        _check_queue(client, result, warm.pop("ingress", 0))
                    print(_row(result), flush=True)
            if args.profile:
                profile(by_kind["ingress"], args)
                client.delete("calls")
        for line in by_kind["ingress"].log_path.read_text(errors="replace").splitlines():
            if "script calls" in line:
                print(f"\ningress: {line.split('] ', 1)[-1]}")
    finally:
        client.close()
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def profile(server: Server, args: argparse.Namespace) -> None:
    """One extra ingress run, sampled with py-spy; print where the server's time went."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    duration = max(1, int(args.seconds))
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(server.process.pid), "--format", "raw",
         "--rate", str(PROFILE_RATE), "--gil", "--nonblocking",
         "--duration", str(duration + int(STARTUP_ALLOWANCE)), "--output", args.profile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    result = run_load(server, 0, args, args.seconds, args.requests, None)
    recorder.wait(timeout=duration + 60)
    print(f"\npy-spy profile of the ingress server ({args.profile}), an extra run:")
    print(_row(result))
    samples = sum(
        int(line.rpartition(" ")[2])
        for line in Path(args.profile).read_text().splitlines()
        if line.rpartition(" ")[2].isdigit()
    )
    print(
        f"{samples / PROFILE_RATE:.2f} s sampled holding the GIL, of {result.server_cpu:.2f} s "
        "of server CPU (the rest: system calls, waiting for and handing over the GIL)"
    )
    print(summarize_profile(Path(args.profile)))


# Where a sample's time is counted: the first frame, from the innermost out, that is not
# in the standard library (asyncio, json, base64... count for whoever called them).
CATEGORIES = (
    ("worker/ingress/message.py", "Celery message (message.py)"),
    ("worker/ingress/dispatch.py", "Redis (dispatch.py, redis-py)"),
    ("redis/", "Redis (dispatch.py, redis-py)"),
    ("parse_body", "parse + validate (pydantic)"),
    ("pydantic", "parse + validate (pydantic)"),
    ("worker/goto/", "parse + validate (pydantic)"),
    ("worker/ingress/dedup.py", "dedup key + routing"),
    ("worker/ingress/routing.py", "dedup key + routing"),
    ("worker/", "ingress request handling (app.py, intake.py)"),
    ("uvicorn/", "HTTP server (uvicorn, h11)"),
    ("h11/", "HTTP server (uvicorn, h11)"),
    ("starlette/", "Starlette routing"),
    ("celery/", "Celery send_task (celery, kombu)"),
    ("kombu/", "Celery send_task (celery, kombu)"),
)
# Frames that decide; uvicorn's server loop (server.py, main.py) does not: time spent in
# the event loop itself is counted as such.
OWN_CODE = (
    "worker/",
    "redis/",
    "pydantic",
    "uvicorn/protocols/",
    "uvicorn/middleware/",
    "h11/",
    "starlette/",
    "celery/",
    "kombu/",
)


def summarize_profile(path: Path, top: int = 15) -> str:
    """Shares of sampled (GIL-holding) time per part of the work, and per function."""
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = stack.split(";")
        own[_frame_name(frames[-1])] += samples
        parts[_category(frames)] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples; by part of the work:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in parts.most_common()]
    lines.append("by function (its own code, callees excluded):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        if not any(mark in frame for mark in OWN_CODE):
            continue
        for mark, name in CATEGORIES:
            if mark in frame:
                return name
        return "other libraries"
    return "event loop, threads (asyncio, stdlib)"


def _frame_name(frame: str) -> str:
    # "function (path/module.py:123)" -> "function (path/module.py)"
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _row(r: Result) -> str:
    statuses = ",".join(f"{k}:{v}" for k, v in sorted(r.statuses.items()))
    redis = f"{r.per_request_us(r.redis_cpu):>6.0f}" if r.name == "ingress" else f"{'-':>6}"
    return (
        f"{r.round:>5} {r.name:<8} {r.requests:>8} {r.rate:>7.0f} {r.p50_ms:>7.2f} "
        f"{r.p99_ms:>7.2f} {r.per_request_us(r.server_cpu):>7.0f} {r.server_busy:>6.0%} "
        f"{redis} {r.client_busy:>7.0%}  {statuses}"
    )


HEADER = (
    f"{'round':>5} {'app':<8} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'srv us':>7} {'srv %':>6} {'rds us':>6} {'cli %':>7}  statuses"
)


def describe(args: argparse.Namespace) -> str:
    import celery
    import redis
    import uvicorn

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"python {sys.version.split()[0]}, uvicorn {uvicorn.__version__} ({http}, {loop}), "
        f"celery {celery.__version__}, redis-py {redis.__version__}; {os.cpu_count()} CPUs, "
        f"load average {load}\n{args.clients} client process(es) x {args.connections} "
        f"connections, {args.seconds:g} s per run (at most {args.requests} requests), "
        f"{args.rounds} round(s), ingress log level {args.log_level}"
    )


def _combined(results: list[Result], name: str) -> Result:
    """All of ``name``'s runs as one: their requests, times and CPU added up."""
    runs = [r for r in results if r.name == name]
    return Result(
        name=name,
        round=0,
        clients=runs[0].clients,
        requests=sum(r.requests for r in runs),
        elapsed=sum(r.elapsed for r in runs),
        p50_ms=0.0,
        p99_ms=0.0,
        statuses={},
        server_cpu=sum(r.server_cpu for r in runs),
        client_cpu=sum(r.client_cpu for r in runs),
    )


def summary(results: list[Result], rounds: int) -> str:
    """Per-round ratios, their medians, and the ratios over all rounds together."""
    rates: list[float] = []
    cpus: list[float] = []
    for round_ in [*range(1, rounds + 1), 0]:
        if round_:
            bare, real = (r for r in results if r.round == round_)
        else:
            bare, real = _combined(results, "bare"), _combined(results, "ingress")
        rates.append(real.rate / bare.rate)
        cpus.append(bare.cpu_us / real.cpu_us)

    def listed(values: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in values) + f"; median {statistics.median(values):.2f}"

    return "\n".join(
        [
            f"ingress / bare req/s per round: {listed(rates[:-1])} (target >= 0.60)",
            f"bare / ingress server CPU per request per round: {listed(cpus[:-1])}",
            "  (what the req/s ratio would be if each server had a core to itself)",
            f"all rounds together: bare {bare.rate:.0f} req/s at {bare.cpu_us:.0f} us/request, "
            f"ingress {real.rate:.0f} req/s at {real.cpu_us:.0f} us/request;",
            f"  req/s ratio {rates[-1]:.2f}, CPU ratio {cpus[-1]:.2f}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run")
    parser.add_argument("--requests", type=int, default=500_000, help="request cap per run")
    parser.add_argument("--rounds", type=int, default=6, help="bare/ingress pairs")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=16, help="connections per client")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per app")
    parser.add_argument("--log-level", default="INFO", help="ingress log level")
    parser.add_argument("--profile", metavar="FILE", help="py-spy an extra ingress run to FILE")
    parser.add_argument("--serve", choices=("bare", "ingress"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    print(describe(args))
    print("srv us / rds us: server / redis-server CPU per request; srv % / cli %: how busy the")
    print("server process / the average client process was (100 % = one core)\n")
    print(HEADER, flush=True)
    results = bench(args)
    print()
    print(summary(results, args.rounds))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
