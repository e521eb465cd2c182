"""`callworker ingress` without CALLWORKER_WEBHOOK_SECRET uses the one provision generated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import env_without_callworker, free_port, port_open, wait_until
from worker.config import Settings
from worker.provision import ProvisionState, save_state, state_path


def test_ingress_takes_the_generated_secret_from_the_data_folder(
    redis_url: str, data_dir: Path
) -> None:
    secret = "generated-by-provision-0123456789abcdef"
    save_state(
        state_path(Settings.from_env({"CALLWORKER_DATA_DIR": str(data_dir)})),
        ProvisionState(channel_id="Webhook.x", webhook_secret=secret),
    )
    port = free_port()
    env = env_without_callworker() | {
        "CALLWORKER_DATA_DIR": str(data_dir),
        "CALLWORKER_REDIS_URL": redis_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "ingress", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: port_open(port), timeout=20, what="the ingress to listen")
        base = f"http://127.0.0.1:{port}/webhooks/goto/"
        assert httpx.options(base + secret).status_code == 200
        assert httpx.options(base + "not-the-secret-0123456789").status_code == 404
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert secret.encode() not in err
