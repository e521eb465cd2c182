"""Subcommands of ``callworker``, collected for :mod:`worker.cli`."""

from __future__ import annotations

import click

ALL: list[click.Command] = []
