"""``callworker sandbox`` as a real process: prints its URL, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.helpers import env_without_callworker, free_port

ROOT = Path(__file__).resolve().parents[2]


def callworker(*args: str) -> subprocess.Popen[str]:
    """Run the ``callworker`` console script (or the same entry point when not installed)."""
    script = shutil.which("callworker", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-c", "from worker.cli import main; main()"]
    return subprocess.Popen(
        [*command, *args],
        cwd=ROOT,
        env=env_without_callworker(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_sandbox_command_serves_credentials_and_stops_on_sigterm() -> None:
    port = free_port()
    process = callworker("sandbox", "--host", "127.0.0.1", "--port", str(port))
    try:
        lines = lines_of(process)
        seen = []
        while True:
            line = lines.get(timeout=30)
            seen.append(line)
            if line.startswith("Stop with"):
                break
        url = f"http://127.0.0.1:{port}"
        assert seen[0].strip() == f"gotosim sandbox listening on {url}"
        creds = httpx.get(f"{url}/_sim/credentials", trust_env=False, timeout=10).json()
        assert creds["apiUrl"] == url
        printed = "".join(seen)
        assert creds["clientId"] in printed and creds["organizationId"] in printed
        assert creds["clientSecret"] not in printed and creds["refreshToken"] not in printed
        token = httpx.post(
            f"{url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": creds["refreshToken"]},
            auth=(creds["clientId"], creds["clientSecret"]),
            trust_env=False,
        )
        assert token.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        errors = process.stderr.read()
        assert "Traceback" not in errors, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_busy_port_is_one_clear_line_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        process = callworker("sandbox", "--host", "127.0.0.1", "--port", str(port))
        out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().splitlines() == [
        f"callworker: [Errno 98] cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in err and out == ""
