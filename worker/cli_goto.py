"""``callworker provision`` and ``callworker deprovision``: set up and tear down on GoTo.

Both read the settings, optionally swap in the credentials of a running
gotosim (``--sandbox URL``), and call :mod:`worker.provision`. Expected
failures end with one line on stderr and exit status 1.
"""

from __future__ import annotations

import asyncio
import logging

import click

from worker.cli import CliError, friendly_errors, load_settings
from worker.config import Settings
from worker.provision import (
    DEFAULT_GREETINGS_WAIT,
    ProvisionError,
    deprovision,
    provision,
    sandbox_settings,
)

SANDBOX_HELP = (
    "Provision against the gotosim at URL (e.g. http://127.0.0.1:8911), "
    "taking its credentials from GET URL/_sim/credentials."
)


async def _settings(sandbox: str | None) -> Settings:
    settings = load_settings()
    if settings.log_level != "DEBUG":
        # The report is the output; progress lines (retries, the temporary receiver's
        # uvicorn start/stop) would bury the one line an expected failure prints.
        for name in ("worker", "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if sandbox:
        settings = await sandbox_settings(settings, sandbox)
    return settings


@click.command("provision")
@click.option("--sandbox", metavar="URL", help=SANDBOX_HELP)
@click.option(
    "--wait",
    "greetings_wait",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_GREETINGS_WAIT,
    show_default=True,
    help="Seconds to wait for the greetings notification of each new extension.",
)
@friendly_errors
def provision_command(sandbox: str | None, greetings_wait: float) -> None:
    """Create (or reuse) the notification channel, device and extensions, and confirm greetings."""

    async def run() -> None:
        settings = await _settings(sandbox)
        report = await provision(settings, greetings_wait=greetings_wait)
        for line in report.lines():
            click.echo(line)
        if report.problem:
            raise CliError(report.problem)

    try:
        asyncio.run(run())
    except ProvisionError as exc:
        raise CliError(str(exc)) from None


@click.command("deprovision")
@click.option("--sandbox", metavar="URL", help=SANDBOX_HELP)
@friendly_errors
def deprovision_command(sandbox: str | None) -> None:
    """Delete the extensions, device and channel that provision made, and its state file."""

    async def run() -> None:
        settings = await _settings(sandbox)
        for line in await deprovision(settings):
            click.echo(line)

    try:
        asyncio.run(run())
    except ProvisionError as exc:
        raise CliError(str(exc)) from None


__all__ = ["deprovision_command", "provision_command"]
