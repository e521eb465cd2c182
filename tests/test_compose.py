"""docker-compose.yml cannot run here (no Docker engine); check what can be checked of it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from worker.cli import main
from worker.config import PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
CALLWORKER = [name for name, svc in SERVICES.items() if svc.get("image") == "callworker:latest"]


def _parse(argv: list[str]) -> click.Context:
    """Parse ``callworker <argv>`` as the CLI would, without running the command."""
    name, *args = argv
    assert name in main.commands, f"`callworker {name}` is not a command"
    command = main.commands[name]
    ctx = command.make_context(f"callworker {name}", list(args), resilient_parsing=False)
    if isinstance(command, click.Group) and ctx.protected_args:
        sub = ctx.protected_args[0]
        assert sub in command.commands, f"`callworker {name} {sub}` is not a command"
    return ctx


def test_every_callworker_service_is_known() -> None:
    assert set(CALLWORKER) == {"ingress", "worker", "beat", "gotosim"}
    assert SERVICES["gotosim"]["profiles"] == ["sandbox"]


@pytest.mark.parametrize("service", CALLWORKER)
def test_command_is_a_real_cli_command(service: str) -> None:
    _parse(SERVICES[service]["command"])


@pytest.mark.parametrize("service", CALLWORKER)
def test_health_check_is_real(service: str) -> None:
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    if test[1] == "callworker":
        _parse(test[2:])
    else:
        assert test[1] == "python" and "urlopen" in test[3]
        port = re.search(r"127\.0\.0\.1:(\d+)/", test[3])
        assert port is not None and port.group(1) in " ".join(SERVICES[service]["command"])


@pytest.mark.parametrize("service", CALLWORKER)
def test_every_variable_is_a_real_setting(service: str) -> None:
    environment: dict[str, str] = SERVICES[service]["environment"]
    settings = {PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    for variable, value in environment.items():
        assert variable in settings, f"{service}: {variable} is not a callworker setting"
        if "${" not in value:
            Settings.from_env({variable: value})


def test_redis_is_durable_and_healthy() -> None:
    redis = SERVICES["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "redis-cli" in redis["healthcheck"]["test"]
    for service in ("ingress", "worker", "beat"):
        assert SERVICES[service]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
