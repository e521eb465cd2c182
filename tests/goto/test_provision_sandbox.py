"""Provisioning and the client end to end against the real gotosim.

The command-line test runs ``callworker sandbox`` and ``callworker provision
--sandbox`` as real processes, as the README tells a user to; the others
serve gotosim's app in-process on 127.0.0.1 and read its ``/_sim/`` log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ServerThread, env_without_callworker, free_port, port_open, wait_until
from worker.config import Settings
from worker.goto.client import GoToClient
from worker.goto.errors import AmbiguousResultError
from worker.provision import deprovision, provision, sandbox_settings

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "fixtures" / "seed"
CLI = "from worker.cli import main; main(prog_name='callworker')"


def sim_get(base: str, what: str, **query: str) -> Any:
    response = httpx.get(f"{base}/_sim/{what}", params=query, timeout=10)
    response.raise_for_status()
    return response.json()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env_without_callworker() | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[str]:
    """``callworker sandbox`` as a real process on a free port."""
    port = free_port()
    log = (tmp_path / "sandbox.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "sandbox", "--host", "127.0.0.1", "--port", str(port)],
        env=env_without_callworker(),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: port_open(port) or process.poll() is not None,
            timeout=30,
            what="callworker sandbox to listen",
        )
        assert process.poll() is None, (tmp_path / "sandbox.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_cli_provision_reuse_and_deprovision_against_the_sandbox(
    sandbox_process: str, data_dir: Path
) -> None:
    base = sandbox_process
    port = free_port()
    env = {"CALLWORKER_DATA_DIR": str(data_dir), "CALLWORKER_INGRESS_PORT": str(port)}
    creds = sim_get(base, "credentials")

    first = run_cli("provision", "--sandbox", base, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    state = sim_get(base, "state")
    (channel,) = state["channels"]
    (device,) = state["devices"]
    channel_id = channel["channelId"]
    device_id = device["deviceId"]
    assert device["incomingCallChannelId"] == device["sessionManagementChannelId"] == channel_id
    assert sorted(e["number"] for e in device["extensions"]) == sorted(creds["extensions"])
    out = first.stdout.splitlines()
    assert out[0].startswith(f"channel    {channel_id}  (created) -> http://127.0.0.1:{port}/")
    assert out[1] == f"device     {device_id}  (created)"
    for line, number in zip(out[2:], creds["extensions"], strict=False):
        assert line.startswith(f"extension  {number}  (created); greetings notification arrived")
    # The sandbox delivered each greetings to provision's receiver, which answered 204.
    greetings = sim_get(base, "notifications", type="greetings")["items"]
    assert sorted(g["body"]["content"]["extensionNumber"] for g in greetings) == sorted(
        creds["extensions"]
    )
    assert all(g["outcome"] == "delivered" for g in greetings)
    assert all(g["attempts"][-1]["status"] == 204 for g in greetings)
    assert all(g["url"].startswith(f"http://127.0.0.1:{port}/webhooks/goto/") for g in greetings)
    created = len(sim_get(base, "requests", method="POST")["items"])

    second = run_cli("provision", "--sandbox", base, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines()[0].startswith(f"channel    {channel_id}  (reused)")
    assert f"device     {device_id}  (reused)" in second.stdout
    assert second.stdout.count("greetings notification confirmed earlier") == len(
        creds["extensions"]
    )
    posts = sim_get(base, "requests", method="POST")["items"]
    assert [p["path"] for p in posts[created:]] == ["/oauth/token"], posts[created:]
    assert len(sim_get(base, "notifications", type="greetings")["items"]) == len(greetings)

    gone = run_cli("deprovision", "--sandbox", base, env=env)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert f"device     {device_id}  deleted" in gone.stdout
    assert f"channel    {channel_id}  deleted" in gone.stdout
    state = sim_get(base, "state")
    assert (state["channels"], state["devices"]) == ([], [])
    assert not (data_dir / "provision.json").exists()


@pytest.fixture
def sandbox() -> Iterator[str]:
    from gotosim.app import create_app

    server = ServerThread(create_app()).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def sandboxed(sandbox: str, data_dir: Path) -> AsyncIterator[Settings]:
    base = Settings.from_env(
        {"CALLWORKER_DATA_DIR": str(data_dir), "CALLWORKER_INGRESS_PORT": str(free_port())}
    )
    yield await sandbox_settings(base, sandbox)


async def test_sandbox_settings_take_the_sandbox_credentials(
    sandbox: str, sandboxed: Settings
) -> None:
    creds = sim_get(sandbox, "credentials")
    assert (sandboxed.goto_api_url, sandboxed.goto_auth_url) == (sandbox, sandbox)
    assert sandboxed.client_id == creds["clientId"]
    assert sandboxed.client_secret.reveal() == creds["clientSecret"]
    assert sandboxed.organization_id == creds["organizationId"]
    assert sandboxed.extensions == tuple(creds["extensions"])
    assert creds["clientSecret"] not in repr(sandboxed)


async def test_provision_survives_rate_limits_and_5xx_from_the_sandbox(
    sandbox: str, sandboxed: Settings
) -> None:
    async with httpx.AsyncClient(base_url=sandbox) as http:
        for fault in (
            {"type": "rate-limit", "count": 1, "retryAfter": 1, "method": "POST"},
            {"type": "server-error", "status": 503, "count": 2, "method": "GET"},
        ):
            (await http.post("/_sim/faults", json=fault)).raise_for_status()
    report = await provision(sandboxed, greetings_wait=10)
    assert report.confirmed, report.lines()
    statuses = [r["status"] for r in sim_get(sandbox, "requests")["items"]]
    assert 429 in statuses and 503 in statuses
    await deprovision(sandboxed)


async def test_make_call_whose_reply_is_lost_does_not_dial_twice(
    sandbox: str, sandboxed: Settings
) -> None:
    report = await provision(sandboxed, greetings_wait=10)
    assert report.confirmed, report.lines()
    offer = json.loads((SEED / "make_call_request.json").read_text())["sdp"]
    async with httpx.AsyncClient(base_url=sandbox) as http:
        fault = {
            "type": "server-error",
            "status": 502,
            "count": 1,
            "afterEffect": True,
            "method": "POST",
            "path": "/web-calls/v1/calls",
        }
        (await http.post("/_sim/faults", json=fault)).raise_for_status()
    async with GoToClient.from_settings(sandboxed) as goto:
        with pytest.raises(AmbiguousResultError) as info:
            await goto.make_call(
                device_id=report.device_id,
                organization_id=sandboxed.organization_id,
                extension_number=sandboxed.extensions[0],
                dial_string="+15145550000",
                in_call_channel_id=report.channel_id,
                sdp=offer,
            )
        assert "the call may have been placed" in str(info.value)
        calls = sim_get(sandbox, "calls")["items"]
        assert len(calls) == 1, calls
        dials = sim_get(sandbox, "requests", method="POST", path="/web-calls/v1/calls")["items"]
        assert len(dials) == 1, dials
        # What the error tells the caller to check is there to check: the call exists.
        await goto.hangup(calls[0]["id"])
    await deprovision(sandboxed)
