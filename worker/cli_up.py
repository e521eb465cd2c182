"""``callworker up``: run the whole system on this machine (see :mod:`worker.up`)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from worker.cli import CliError, friendly_errors, load_settings


@click.command("up")
@click.option("--ingress-port", type=int, default=0, help="Ingress port (default: the setting).")
@click.option(
    "--drain-seconds",
    default=10.0,
    show_default=True,
    help="How long live calls may go on at stop.",
)
@friendly_errors
def up_command(ingress_port: int, drain_seconds: float) -> None:
    """Run redis, the sandbox (without GoTo credentials), ingress, a worker node and beat."""
    from worker.up import System, UpError

    system = System(load_settings(), ingress_port=ingress_port, drain_seconds=drain_seconds)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        system.start()
        click.echo("callworker is up:")
        for line in system.lines():
            click.echo(line)
        click.echo("Ctrl-C stops everything.")
        why = system.wait(stop)
        click.echo(f"stopping: {why}")
    except UpError as exc:
        raise CliError(str(exc)) from None
    finally:
        system.stop()
        click.echo("stopped.")


@click.command("demo")
@friendly_errors
def demo_command() -> None:
    """Run the system against the sandbox with scripted calls; exit 0 if all end as expected."""
    import sys

    from worker.demo import run_demo
    from worker.up import UpError

    try:
        passed = run_demo(load_settings(), click.echo)
    except UpError as exc:
        raise CliError(str(exc)) from None
    sys.exit(0 if passed else 1)
