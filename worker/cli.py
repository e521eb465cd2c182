"""The ``callworker`` command.

Each subcommand reads :class:`~worker.config.Settings` once, configures
logging once, and calls into the package. Expected failures (a bad setting,
an unreachable API, a GoTo error) end with one clear line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from worker import logs
from worker.config import ConfigError, Settings

F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """An expected failure with a message for the person at the terminal."""


def friendly_errors(func: F) -> F:
    """Turn expected errors into one line on stderr and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from worker.goto.errors import GoToError

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"callworker: bad setting {exc}", err=True)
        except (GoToError, CliError, OSError) as exc:
            click.echo(f"callworker: {exc}", err=True)
        sys.exit(1)

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    return settings


@click.group()
@click.version_option(package_name="callworker")
def main() -> None:
    """Event-driven call automation for the GoTo Connect Devices and Calls API."""


def _register() -> None:
    from worker import commands

    for command in commands.ALL:
        main.add_command(command)


_register()
