"""Provisioning against FakeGoTo over real HTTP, with real webhook receivers."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.goto.fakegoto import FakeGoTo
from tests.helpers import ServerThread, env_without_callworker, free_port
from worker.config import Settings
from worker.provision import (
    GreetingsReceiver,
    deprovision,
    greetings_key,
    load_state,
    mask_url,
    provision,
)

WC = "/web-calls/v1"
NC = "/notification-channel/v1"
ROOT = Path(__file__).resolve().parents[2]


def env_for(fake: FakeGoTo, api: str, data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        "CALLWORKER_GOTO_API_URL": api,
        "CALLWORKER_GOTO_AUTH_URL": api,
        "CALLWORKER_CLIENT_ID": fake.client_id,
        "CALLWORKER_CLIENT_SECRET": fake.client_secret,
        "CALLWORKER_REFRESH_TOKEN": next(iter(fake.refresh_tokens)),
        "CALLWORKER_ORGANIZATION_ID": "org-1",
        "CALLWORKER_EXTENSIONS": "0523,0524",
        "CALLWORKER_DATA_DIR": str(data_dir),
        "CALLWORKER_INGRESS_PORT": str(port),
    }
    env.update({f"CALLWORKER_{k.upper()}": v for k, v in extra.items()})
    return env


@pytest.fixture
def settings(fake: FakeGoTo, server: ServerThread, data_dir: Path) -> Settings:
    return Settings.from_env(env_for(fake, server.url, data_dir, free_port()))


def posts(fake: FakeGoTo) -> list[str]:
    return [r.path for r in fake.requests if r.method == "POST" and r.path != "/oauth/token"]


async def test_first_run_creates_everything_and_hears_greetings(
    fake: FakeGoTo, settings: Settings
) -> None:
    report = await provision(settings, greetings_wait=10)
    assert report.confirmed, report.lines()
    assert report.problem == ""
    assert report.confirmed_by == "receiver"
    assert (report.channel_status, report.device_status) == ("created", "created")
    assert [(e.number, e.status, e.confirmed_now) for e in report.extensions] == [
        ("0523", "created", True),
        ("0524", "created", True),
    ]
    (channel,) = fake.channels.values()
    assert report.channel_id == channel["channelId"]
    device = fake.devices[report.device_id]
    assert device["callbackReference"] == {
        "incomingCallChannelId": report.channel_id,
        "sessionManagementChannelId": report.channel_id,
    }
    assert sorted(fake.extensions[report.device_id]) == ["0523", "0524"]
    url = channel["webhookChannelData"]["webhook"]["url"]
    assert url.startswith(f"http://127.0.0.1:{settings.ingress_port}/webhooks/goto/")
    # GoTo's OPTIONS check and both greetings reached provision's own receiver.
    assert sorted(fake.deliveries) == sorted(
        [(f"OPTIONS {url}", 200), (f"POST {url}", 204), (f"POST {url}", 204)]
    )
    lines = report.lines()
    assert lines[0].startswith(f"channel    {report.channel_id}  (created) -> http://127.0.0.1:")
    assert lines[0].endswith("/webhooks/goto/********")
    assert lines[1] == f"device     {report.device_id}  (created)"
    assert lines[2].startswith("extension  0523  (created); greetings notification arrived (")
    assert "CALLWORKER_WEBHOOK_SECRET" in lines[-1]
    secret = url.rsplit("/", 1)[1]
    assert len(secret) >= 32 and all(secret not in line for line in lines)
    path = settings.data_dir / "provision.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state = load_state(path)
    assert state is not None
    assert (state.channel_id, state.device_id, state.webhook_url) == (
        report.channel_id,
        report.device_id,
        url,
    )
    assert all(state.extensions[n] for n in ("0523", "0524"))


async def test_second_run_verifies_and_reuses(fake: FakeGoTo, settings: Settings) -> None:
    first = await provision(settings, greetings_wait=10)
    made = posts(fake)
    gets_before = len(fake.seen("GET"))
    second = await provision(settings, greetings_wait=10)
    assert posts(fake) == made, fake.describe()
    assert len(fake.seen("GET")) >= gets_before + 3
    assert fake.seen("GET", f"{WC}/devices/{first.device_id}")
    assert (second.channel_id, second.device_id) == (first.channel_id, first.device_id)
    assert (second.channel_status, second.device_status) == ("reused", "reused")
    assert [(e.status, e.greetings_at) for e in second.extensions] == [
        ("reused", e.greetings_at) for e in first.extensions
    ]
    assert second.confirmed and second.problem == ""
    assert "greetings notification confirmed earlier (" in second.lines()[2]


async def test_a_lost_device_is_recreated_with_its_extensions(
    fake: FakeGoTo, settings: Settings
) -> None:
    first = await provision(settings, greetings_wait=10)
    del fake.devices[first.device_id]
    del fake.extensions[first.device_id]
    again = await provision(settings, greetings_wait=10)
    assert again.channel_status == "reused"
    assert again.device_status == "re-created: the old one is gone"
    assert again.device_id == first.device_id
    assert [e.status for e in again.extensions] == ["created", "created"]
    assert again.confirmed, again.lines()


async def test_a_lost_channel_recreates_channel_and_device(
    fake: FakeGoTo, settings: Settings
) -> None:
    first = await provision(settings, greetings_wait=10)
    fake.channels.clear()
    again = await provision(settings, greetings_wait=10)
    assert again.channel_status == "re-created: the old one is gone"
    assert again.channel_id != first.channel_id
    assert again.device_status == "re-created: it pointed at another channel"
    assert fake.devices[again.device_id]["callbackReference"]["incomingCallChannelId"] == (
        again.channel_id
    )
    assert again.confirmed, again.lines()


async def test_missing_greetings_are_reported_then_re_registered(
    fake: FakeGoTo, settings: Settings
) -> None:
    fake.greet = False
    report = await provision(settings, greetings_wait=0.5)
    assert not report.confirmed
    assert report.problem.startswith(
        "no greetings notification for extension 0523, 0524 arrived at http://127.0.0.1:"
    )
    assert "/webhooks/goto/******** within 0.5 s; check that GoTo can reach that URL" in (
        report.problem
    )
    assert "greetings notification NOT confirmed" in report.lines()[2]
    fake.greet = True
    again = await provision(settings, greetings_wait=10)
    assert [e.status for e in again.extensions] == ["re-registered", "re-registered"]
    assert again.confirmed
    deletes = fake.seen("DELETE", f"{WC}/devices/{again.device_id}/extensions")
    assert sorted(d.query["extensionNumber"] for d in deletes) == ["0523", "0524"]


async def test_a_dropped_extension_is_removed(
    fake: FakeGoTo, server: ServerThread, data_dir: Path
) -> None:
    port = free_port()
    await provision(Settings.from_env(env_for(fake, server.url, data_dir, port)), greetings_wait=10)
    fewer = Settings.from_env(env_for(fake, server.url, data_dir, port, extensions="0524"))
    report = await provision(fewer, greetings_wait=10)
    assert [e.number for e in report.extensions] == ["0524"]
    assert list(fake.extensions[report.device_id]) == ["0524"]


async def test_greetings_confirmed_through_the_running_ingress_and_redis(
    fake: FakeGoTo, server: ServerThread, data_dir: Path, redis_url: str
) -> None:
    from worker.ingress.app import create_app

    secret = "s" * 40
    port = free_port()
    settings = Settings.from_env(
        env_for(fake, server.url, data_dir, port, webhook_secret=secret, redis_url=redis_url)
    )
    ingress = ServerThread(create_app(settings), port=port).start()
    try:
        report = await provision(settings, greetings_wait=10)
    finally:
        ingress.stop()
    assert report.confirmed_by == "redis"
    assert report.confirmed, report.lines()
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stamps = client.mget([greetings_key("org-1", n) for n in ("0523", "0524")])
    finally:
        client.close()
    assert [e.greetings_at for e in report.extensions] == stamps
    assert report.note == ""  # the secret came from the settings


async def test_cannot_confirm_when_another_process_serves_the_url_and_no_redis(
    fake: FakeGoTo, server: ServerThread, data_dir: Path
) -> None:
    async def accept(request: Request) -> Response:
        return Response(status_code=200 if request.method == "OPTIONS" else 204)

    other = Starlette(routes=[Route("/{p:path}", accept, methods=["POST", "OPTIONS"])])
    busy = ServerThread(other).start()
    try:
        settings = Settings.from_env(env_for(fake, server.url, data_dir, busy.port))
        report = await provision(settings, greetings_wait=0.2)
    finally:
        busy.stop()
    assert report.confirmed_by == "none"
    assert not report.confirmed
    assert f"something already listens on port {busy.port}" in report.problem
    assert "CALLWORKER_REDIS_URL is not set" in report.problem
    assert "run `callworker ingress`" in report.problem


async def test_deprovision_removes_everything_and_tolerates_404(
    fake: FakeGoTo, settings: Settings
) -> None:
    report = await provision(settings, greetings_wait=10)
    del fake.extensions[report.device_id]["0524"]  # already gone on GoTo's side
    lines = await deprovision(settings)
    assert lines[0] == "extension  0523  deleted"
    assert lines[1] == "extension  0524  deleted"  # DELETE with a filter matching nothing is 204
    assert lines[2] == f"device     {report.device_id}  deleted"
    assert lines[3] == f"channel    {report.channel_id}  deleted"
    assert fake.channels == {} and fake.devices == {}
    assert not (settings.data_dir / "provision.json").exists()
    assert (await deprovision(settings))[0].startswith("nothing to deprovision")


async def test_deprovision_reports_pieces_already_gone(fake: FakeGoTo, settings: Settings) -> None:
    report = await provision(settings, greetings_wait=10)
    fake.devices.clear()
    fake.extensions.clear()
    fake.channels.clear()
    lines = await deprovision(settings)
    assert lines[:4] == [
        "extension  0523  already gone",
        "extension  0524  already gone",
        f"device     {report.device_id}  already gone",
        f"channel    {report.channel_id}  already gone",
    ]


def test_mask_url_hides_the_secret() -> None:
    assert mask_url("http://127.0.0.1:8080/webhooks/goto/abcdef") == (
        "http://127.0.0.1:8080/webhooks/goto/********"
    )
    assert mask_url("https://example.com/hook/abcdef") == "https://example.com/********"


async def test_receiver_answers_like_a_webhook_endpoint() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/goto/secret-secret-secret"
    receiver = await GreetingsReceiver.serve(url)
    assert receiver is not None
    assert await GreetingsReceiver.serve(url) is None  # the port is taken now
    greetings = json.loads((ROOT / "tests/fixtures/seed/greetings.json").read_text())
    try:
        async with httpx.AsyncClient() as http:
            options = await http.options(url)
            assert (options.status_code, options.headers["allow"]) == (200, "POST, OPTIONS")
            assert (await http.post(url[:-1], json=greetings)).status_code == 404
            assert (await http.post(url, content=b"{nope")).status_code == 400
            assert (await http.post(url, content=b"x" * (1 << 20 | 1))).status_code == 413
            assert (await http.post(url, json=greetings)).status_code == 204
        found = await receiver.wait_for("INTEGRATOR_ORG_ID", ["0523"], 5)
        assert found == {"0523": "2020-04-16T21:18:57.008116-04:00"}
    finally:
        await receiver.stop()


# --- the command line ---------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from worker.cli import main; main(prog_name='callworker')"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env_without_callworker() | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def cli_env(fake: FakeGoTo, server: ServerThread, data_dir: Path) -> Iterator[dict[str, str]]:
    yield env_for(fake, server.url, data_dir, free_port())


def test_cli_provision_then_deprovision(fake: FakeGoTo, cli_env: dict[str, str]) -> None:
    done = run_cli("provision", "--wait", "10", env=cli_env)
    assert done.returncode == 0, done.stderr
    (channel,) = fake.channels
    (device,) = fake.devices
    out = done.stdout.splitlines()
    assert out[0].startswith(f"channel    {channel}  (created)")
    assert out[1] == f"device     {device}  (created)"
    assert out[2].startswith("extension  0523  (created); greetings notification arrived")
    again = run_cli("provision", env=cli_env)
    assert again.returncode == 0, again.stderr
    assert f"channel    {channel}  (reused)" in again.stdout
    assert "confirmed earlier" in again.stdout
    gone = run_cli("deprovision", env=cli_env)
    assert gone.returncode == 0, gone.stderr
    assert f"device     {device}  deleted" in gone.stdout
    assert fake.channels == {} and fake.devices == {}


@pytest.mark.parametrize(
    ("drop", "extra", "expected"),
    [
        (
            "CALLWORKER_ORGANIZATION_ID",
            {},
            "callworker: bad setting CALLWORKER_ORGANIZATION_ID: is required to provision",
        ),
        (
            "CALLWORKER_CLIENT_SECRET",
            {},
            "callworker: bad setting CALLWORKER_CLIENT_SECRET: is required to call the GoTo API",
        ),
        (
            "",
            {"CALLWORKER_GOTO_API_URL": "nope"},
            "callworker: bad setting CALLWORKER_GOTO_API_URL",
        ),
    ],
)
def test_cli_bad_settings_give_one_line(
    cli_env: dict[str, str], drop: str, extra: dict[str, str], expected: str
) -> None:
    env = {k: v for k, v in cli_env.items() if k != drop} | extra
    done = run_cli("provision", env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(expected), done.stderr


def test_cli_unreachable_api_gives_one_line(cli_env: dict[str, str]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = cli_env | {"CALLWORKER_GOTO_API_URL": nowhere, "CALLWORKER_GOTO_AUTH_URL": nowhere}
    done = run_cli("provision", env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    last = done.stderr.strip()
    assert last.startswith("callworker: POST /oauth/token to 127.0.0.1:")
    assert "gave up after 4 attempts" in last
    assert cli_env["CALLWORKER_CLIENT_SECRET"] not in done.stderr


def test_cli_unreachable_sandbox_gives_one_line(cli_env: dict[str, str]) -> None:
    port = free_port()
    done = run_cli("provision", "--sandbox", f"http://127.0.0.1:{port}", env=cli_env)
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"callworker: cannot reach the sandbox at http://127.0.0.1:{port}"
    )
    assert f"callworker sandbox --port {port}" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_cli_unconfirmed_greetings_exit_non_zero(fake: FakeGoTo, cli_env: dict[str, str]) -> None:
    fake.greet = False
    done = run_cli("provision", "--wait", "0.3", env=cli_env)
    assert done.returncode == 1
    assert "greetings notification NOT confirmed" in done.stdout
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("callworker: no greetings notification for extension 0523, 0524 arrived")
    )
