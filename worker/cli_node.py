"""``callworker worker`` and ``callworker beat``: a worker node and the periodic scheduler.

A worker node is a Celery worker with the threads pool whose process also
hosts a :class:`~worker.node.runtime.Node` (the media loop and live calls).
The node is built in ``celeryd_after_setup``, after the process started and
before it consumes anything, and drained on shutdown: SIGTERM stops
consuming, lets live calls finish up to ``--drain-seconds``, then hangs the
rest up.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

import click

from worker.cli import CliError, friendly_errors, load_settings
from worker.config import ConfigError

log = logging.getLogger(__name__)


def default_node_name() -> str:
    return f"node{os.getpid()}@{socket.gethostname()}"


@click.command("worker")
@click.option("--name", default=None, help="Node name (name@host); default node<pid>@<host>.")
@click.option(
    "--concurrency", default=16, show_default=True, help="Task threads (not a call limit)."
)
@click.option(
    "--drain-seconds",
    default=60.0,
    show_default=True,
    help="On SIGTERM, how long live calls may go on before they are hung up.",
)
@friendly_errors
def worker_command(name: str | None, concurrency: int, drain_seconds: float) -> None:
    """Run a worker node: answer, own and finish calls."""
    import redis
    from celery import signals

    from tasks.app import create_celery
    from worker.ingress.routing import CALLS_QUEUE
    from worker.node import service
    from worker.node.runtime import Node
    from worker.store import Store

    settings = load_settings()
    app = create_celery(settings)
    node_name = name or default_node_name()
    holder: dict[str, Node] = {}

    def after_setup(sender: str, **_: Any) -> None:
        store = Store(settings.effective_database_url)
        client = redis.Redis.from_url(settings.redis_url)
        node = Node(settings, sender, store=store, redis_client=client).start()
        holder["node"] = node
        service.install(service.Resources(settings, store, node))

    def ready(**_: Any) -> None:
        node = holder.get("node")
        if node is not None:
            node.loop.reset_lag()
            # Celery restarts the whole worker on SIGHUP, which would drop live calls;
            # here SIGHUP reloads the rules and flows instead.
            signal.signal(signal.SIGHUP, lambda signum, frame: node.request_reload())

    def shutting_down(**_: Any) -> None:
        node = holder.get("node")
        if node is not None:
            node.draining = True

    def shutdown(**_: Any) -> None:
        node = holder.pop("node", None)
        if node is not None:
            node.drain(drain_seconds)
            node.stop()

    signals.celeryd_after_setup.connect(after_setup, weak=False)
    signals.worker_ready.connect(ready, weak=False)
    signals.worker_shutting_down.connect(shutting_down, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--hostname={node_name}",
            f"--queues={CALLS_QUEUE}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@click.command("beat")
@click.option(
    "--reap-interval", default=5.0, show_default=True, help="Seconds between reaper passes."
)
@friendly_errors
def beat_command(reap_interval: float) -> None:
    """Run periodic maintenance: the stale-call reaper and the channel lifetime refresh."""
    import asyncio
    import signal

    import redis

    from worker.node.reaper import run_beat
    from worker.ownership import Ownership
    from worker.store import Store

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("CALLWORKER_REDIS_URL", "is required: the reaper reads call ownership")
    store = Store(settings.effective_database_url)
    ownership = Ownership(redis.Redis.from_url(settings.redis_url))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("beat started: reaper every %.1f s", reap_interval)
        await run_beat(
            settings, store=store, ownership=ownership, stop=stop, reap_interval=reap_interval
        )
        log.info("beat stopped")

    asyncio.run(main())


@click.command("node-status")
@click.option(
    "--local",
    is_flag=True,
    help="Exit 1 unless a node on this host is alive (a container health check).",
)
@click.option("--beat", is_flag=True, help="Exit 1 unless the beat is alive.")
@friendly_errors
def node_status_command(local: bool, beat: bool) -> None:
    """List the worker nodes whose heartbeat is alive, with the calls each owns."""
    import redis

    from worker.ownership import Ownership, alive_nodes

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("CALLWORKER_REDIS_URL", "is required: node liveness lives in Redis")
    ownership = Ownership(redis.Redis.from_url(settings.redis_url, socket_timeout=5))
    nodes = alive_nodes(ownership.redis)
    host = socket.gethostname()
    for node in nodes:
        click.echo(f"{node}  alive  {len(ownership.list_owned(node))} calls")
    if not nodes:
        click.echo("no live worker nodes")
    from worker.node.reaper import BEAT_ALIVE_KEY

    beat_alive = bool(ownership.redis.exists(BEAT_ALIVE_KEY))
    click.echo(f"beat  {'alive' if beat_alive else 'not running'}")
    if local and not any(node.endswith("@" + host) for node in nodes):
        raise CliError(f"no live worker node on this host ({host})")
    if beat and not beat_alive:
        raise CliError("the beat is not running (no heartbeat in Redis)")
