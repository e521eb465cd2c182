"""``callworker ingress`` as a real process: it serves, and its output never shows the secret."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import redis

from tests.helpers import env_without_callworker, free_port, port_open, wait_until
from tests.ingress import notifications as n
from tests.ingress.conftest import SECRET
from tests.ingress.messages import queued
from tests.tasks.worker_process import REPO

CALLWORKER = [sys.executable, "-c", "from worker.cli import main; main()"]


def test_callworker_ingress_serves_and_keeps_the_secret_out_of_its_output(
    redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = env_without_callworker() | {
        "CALLWORKER_REDIS_URL": redis_url,
        "CALLWORKER_WEBHOOK_SECRET": SECRET,
        "CALLWORKER_DATA_DIR": str(data_dir),
        "CALLWORKER_LOG_LEVEL": "DEBUG",
    }
    output = tmp_path / "ingress.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [*CALLWORKER, "ingress", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: port_open(port), timeout=30, what="callworker ingress to listen")
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=10.0) as http:
            assert http.get(f"{base}/readyz").status_code == 200
            hook = f"{base}/webhooks/goto/{SECRET}"
            assert http.post(hook, json=n.incoming("cli-call")).status_code == 204
            assert http.post(hook, content=b"{").status_code == 400
            assert http.post(f"{base}/webhooks/goto/guess", json={}).status_code == 404
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    client = redis.Redis.from_url(redis_url)
    assert [m.args[0]["content"]["callId"] for m in queued(client, "calls")] == ["cli-call"]
    client.close()
    text = output.read_text()
    assert "callworker ingress: http://127.0.0.1:" in text
    assert "incoming notification enqueued to calls" in text
    assert "wrong secret" in text
    assert SECRET not in text


def test_callworker_ingress_refuses_a_weak_secret(redis_url: str) -> None:
    env = env_without_callworker() | {
        "CALLWORKER_REDIS_URL": redis_url,
        "CALLWORKER_WEBHOOK_SECRET": "1234",
    }
    done = subprocess.run(
        [*CALLWORKER, "ingress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "bad setting CALLWORKER_WEBHOOK_SECRET: must be at least 16 characters" in done.stderr
    assert "Traceback" not in done.stderr
