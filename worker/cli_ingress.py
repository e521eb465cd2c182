"""``callworker ingress``: serve the webhook ingress with uvicorn.

Reads settings once, configures logging once, then serves
:func:`worker.ingress.app.create_app` on ``CALLWORKER_INGRESS_HOST`` /
``CALLWORKER_INGRESS_PORT``. Uvicorn's access log is off because each of its
lines would carry the webhook path, and so the secret. Without
``CALLWORKER_WEBHOOK_SECRET`` it uses the secret ``callworker provision``
generated and kept in the data folder.
"""

from __future__ import annotations

import click

from worker.cli import friendly_errors, load_settings


@click.command("ingress")
@click.option("--host", default=None, help="Address to bind [default: CALLWORKER_INGRESS_HOST].")
@click.option(
    "--port", type=int, default=None, help="Port to bind [default: CALLWORKER_INGRESS_PORT]."
)
@friendly_errors
def ingress(host: str | None, port: int | None) -> None:
    """Receive GoTo webhooks, deduplicate them and enqueue them for the worker nodes."""
    import uvicorn

    from worker.ingress.app import create_app
    from worker.ingress.intake import redis_location

    settings = load_settings()
    if not settings.webhook_secret:
        # The secret `callworker provision` generated, when none was configured.
        import dataclasses

        from worker.config import Secret
        from worker.provision import load_state, state_path

        state = load_state(state_path(settings))
        if state is not None and state.webhook_secret:
            settings = dataclasses.replace(settings, webhook_secret=Secret(state.webhook_secret))
    app = create_app(settings)
    bind_host = host or settings.ingress_host
    bind_port = settings.ingress_port if port is None else port
    click.echo(
        f"callworker ingress: http://{bind_host}:{bind_port}/webhooks/goto/<secret> "
        f"-> Redis {redis_location(settings.redis_url)}",
        err=True,
    )
    uvicorn.run(
        app,
        host=bind_host,
        port=bind_port,
        access_log=False,
        log_config=None,
        server_header=False,
        lifespan="on",
    )
