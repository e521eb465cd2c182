"""Ingress throughput: the real webhook ingress against a bare ASGI app, side by side.

Run: ``.venv/bin/python -m bench.ingress`` (options: ``--requests``,
``--seconds``, ``--concurrency``, ``--clients``).

Both servers are uvicorn in a subprocess with the same settings (one process,
127.0.0.1, access log off, the ``callworker ingress`` defaults). The real one
is ``create_app(Settings.from_env())`` on a private redis-server: every
request is parsed, deduplicated (two Redis writes) and enqueued with Celery's
``send_task`` onto the ``calls`` list. The bare one reads the body and answers
204. Load comes from separate client processes (httpx + asyncio), each sending
distinct ``incoming`` notifications (unique call ids, so none is a
duplicate), bounded by a request count and a time limit. The result is a
table of requests per second and latency percentiles, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SECRET = "bench-secret-0123456789abcdef"


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
    """Serve ``kind`` (``bare`` or ``ingress``) as ``callworker ingress`` would."""
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
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_config=None,
        server_header=False,
        lifespan="on",
    )


def notification(call_id: str) -> bytes:
    return json.dumps(
        {
            "source": "WebRTC",
            "type": "incoming",
            "timestamp": datetime.now(UTC).isoformat(),
            "usage": "VOIP",
            "ttl": "30",
            "content": {
                "sessionId": "bench-session",
                "organizationId": "bench-org",
                "extensionNumber": "0523",
                "callId": call_id,
                "name": "Bench",
                "number": "+15550000000",
            },
        }
    ).encode()


async def _load(url: str, count: int, seconds: float, concurrency: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    deadline = time.monotonic() + seconds
    prefix = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:

        async def one_worker() -> None:
            nonlocal sent
            while sent < count and time.monotonic() < deadline:
                sent += 1
                body = notification(f"{prefix}-{sent}")
                started = time.perf_counter()
                response = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "statuses": statuses, "elapsed": elapsed}


def _client(url: str, count: int, seconds: float, concurrency: int, out: Any) -> None:
    out.put(asyncio.run(_load(url, count, seconds, concurrency)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    requests: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    server_cpu: float = 0.0

    @property
    def cpu_us(self) -> float:
        return self.server_cpu / self.requests * 1e6 if self.requests else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0


def run_load(name: str, url: str, args: argparse.Namespace) -> Result:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    per_client = args.requests // args.clients
    clients = [
        context.Process(
            target=_client, args=(url, per_client, args.seconds, args.concurrency, queue)
        )
        for _ in range(args.clients)
    ]
    for process in clients:
        process.start()
    parts = [queue.get(timeout=args.seconds + 60) for _ in clients]
    for process in clients:
        process.join()
    latencies = sorted(x for part in parts for x in part["latencies"])
    statuses: dict[int, int] = {}
    for part in parts:
        for status, number in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + number
    elapsed = max(part["elapsed"] for part in parts)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return Result(name, len(latencies), elapsed, pct(0.50), pct(0.99), statuses)


def _wait_ready(url: str, timeout: float = 20.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {url} did not come up within {timeout} s")


def bench(args: argparse.Namespace) -> list[Result]:
    from tests.helpers import RedisServer, env_without_callworker, free_port

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingress-"))
    redis_server = RedisServer(workdir / "redis")
    results: list[Result] = []
    try:
        for kind in ("bare", "ingress"):
            port = free_port()
            env = env_without_callworker()
            env.update(
                CALLWORKER_REDIS_URL=redis_server.url,
                CALLWORKER_WEBHOOK_SECRET=SECRET,
                CALLWORKER_DATA_DIR=str(workdir / "data"),
                CALLWORKER_LOG_LEVEL=args.log_level,
            )
            log = (workdir / f"{kind}.log").open("wb")
            server = subprocess.Popen(
                [sys.executable, "-m", "bench.ingress", "--serve", kind, "--port", str(port)],
                env=env,
                stdout=log,
                stderr=log,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_ready(f"{base}/healthz" if kind == "ingress" else base)
                url = f"{base}/webhooks/goto/{SECRET}"
                warm = argparse.Namespace(**{**vars(args), "requests": 200, "clients": 1})
                run_load(kind, url, warm)
                cpu_before = cpu_seconds(server.pid)
                result = run_load(kind, url, args)
                result.server_cpu = cpu_seconds(server.pid) - cpu_before
                results.append(result)
            finally:
                server.terminate()
                server.wait(timeout=20)
                log.close()
        import redis

        client = redis.Redis.from_url(redis_server.url)
        queued = client.llen("calls")
        client.close()
        print(f"messages on the calls queue after both runs: {queued}")
    finally:
        redis_server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests per run")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per run")
    parser.add_argument("--concurrency", type=int, default=16, help="connections per client")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--log-level", default="INFO", help="ingress log level")
    parser.add_argument("--serve", choices=("bare", "ingress"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = bench(args)
    print(
        f"{'app':<10} {'requests':>9} {'seconds':>8} {'req/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'server CPU us/req':>18}  statuses"
    )
    for r in results:
        print(
            f"{r.name:<10} {r.requests:>9} {r.elapsed:>8.2f} {r.rate:>8.0f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.cpu_us:>18.0f}  {r.statuses}"
        )
    bare, real = results
    print(f"ingress / bare = {real.rate / bare.rate:.2f} (target >= 0.60)")


if __name__ == "__main__":
    main()
