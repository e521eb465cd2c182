"""``callworker sandbox``: run gotosim, the local GoTo cloud stand-in.

Prints the URL and a summary of the sandbox credentials (no secrets; those are
served at ``GET <url>/_sim/credentials``), then serves until SIGTERM or
Ctrl+C, which stop it cleanly with exit status 0. Credentials are generated
at random unless given (``GOTOSIM_*`` environment variables or options).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from worker import logs
from worker.cli import CliError, friendly_errors

if TYPE_CHECKING:
    from gotosim.media import FarEndFactory
    from gotosim.simulator import Simulator


def _extensions(ctx: click.Context, param: click.Parameter, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    bad = [item for item in items if not item.isdigit()]
    if not items or bad:
        raise click.BadParameter(f"expected comma-separated digit strings, got {raw!r}")
    return items


def _far_end(kind: str, heard_dir: str) -> FarEndFactory | None:
    if kind == "static":
        return None
    try:
        from gotosim.farend import aiortc_far_end_factory
    except ImportError as exc:
        raise CliError(f"the aiortc far end is not available: {exc}") from None
    return aiortc_far_end_factory(heard_dir)


def _announce(sim: Simulator, url: str) -> None:
    config = sim.config
    click.echo(f"gotosim sandbox listening on {url}")
    click.echo(f"  API and OAuth base URL: {url}")
    click.echo(f"  client id:              {config.client_id}")
    click.echo(f"  organization id:        {config.organization_id}")
    click.echo(f"  extensions:             {', '.join(config.extensions)}")
    click.echo(f"  credentials (secrets):  GET {url}/_sim/credentials")
    click.echo(f"  provision against it:   callworker provision --sandbox {url}")
    click.echo("Stop with Ctrl+C or SIGTERM.")


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8911, show_default=True, help="Port (0: any free).")
@click.option("--client-id", envvar="GOTOSIM_CLIENT_ID", default="", help="OAuth client id.")
@click.option(
    "--client-secret", envvar="GOTOSIM_CLIENT_SECRET", default="", help="OAuth client secret."
)
@click.option(
    "--refresh-token", envvar="GOTOSIM_REFRESH_TOKEN", default="", help="Initial refresh token."
)
@click.option("--organization-id", envvar="GOTOSIM_ORGANIZATION_ID", default="")
@click.option(
    "--extensions",
    envvar="GOTOSIM_EXTENSIONS",
    default="1000,1001",
    show_default=True,
    callback=_extensions,
    help="Extension numbers of the organization, comma-separated.",
)
@click.option("--access-token-lifetime", type=click.IntRange(1), default=3600, show_default=True)
@click.option("--ring-timeout", type=click.FloatRange(0), default=30.0, show_default=True)
@click.option(
    "--webhook-check",
    type=click.Choice(["enforce", "record"]),
    default="enforce",
    show_default=True,
    help="Refuse channels whose URL fails the OPTIONS check, or only record the outcome.",
)
@click.option(
    "--far-end",
    type=click.Choice(["static", "aiortc"]),
    default="aiortc",
    show_default=True,
    help="static: SDP answers without media; aiortc: a real WebRTC far end.",
)
@click.option(
    "--heard-dir", default="data/gotosim-heard", show_default=True, help="aiortc far end output."
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@friendly_errors
def sandbox(
    host: str,
    port: int,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    organization_id: str,
    extensions: tuple[str, ...],
    access_token_lifetime: int,
    ring_timeout: float,
    webhook_check: str,
    far_end: str,
    heard_dir: str,
    log_level: str,
) -> None:
    """Run gotosim: a local GoTo cloud (OAuth, REST, webhooks, control API at /_sim/)."""
    from gotosim.model import SimConfig
    from gotosim.server import run

    logs.configure(log_level.upper())
    config = SimConfig(
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
        organization_id=organization_id,
        extensions=extensions,
        access_token_lifetime=access_token_lifetime,
        ring_timeout=ring_timeout,
        webhook_check="record" if webhook_check == "record" else "enforce",
    )
    run(
        host,
        port,
        config=config,
        far_end_factory=_far_end(far_end, heard_dir),
        on_ready=_announce,
        log_level="warning",
    )
