"""A real Celery worker subprocess (``celery -A tasks.app worker -P threads``) for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import env_without_callworker, wait_until

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, node: str, log_path: Path, process: subprocess.Popen[bytes]) -> None:
        self.node = node
        self.log_path = log_path
        self.process = process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def celery_worker(
    redis_url: str,
    data_dir: Path,
    log_dir: Path,
    name: str = "node-a",
    queues: str = "calls",
    extra_env: dict[str, str] | None = None,
) -> Iterator[WorkerProcess]:
    """Run a worker node named ``name@callworker-test`` until the block ends."""
    node = f"{name}@callworker-test"
    env = env_without_callworker()
    env.update(
        CALLWORKER_REDIS_URL=redis_url,
        CALLWORKER_DATA_DIR=str(data_dir),
        CALLWORKER_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks.app", "worker",
        "-P", "threads", "-c", "2", "-Q", queues, "-n", node,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    worker = WorkerProcess(node, log_path, process)
    try:
        wait_until(
            lambda: f"{node} ready." in worker.log() or process.poll() is not None,
            timeout=60,
            interval=0.05,
            what=f"Celery worker {node} to start",
        )
        assert process.poll() is None, f"worker {node} exited:\n{worker.tail()}"
        yield worker
    finally:
        worker.stop()
