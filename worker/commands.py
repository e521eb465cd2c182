"""Subcommands of ``callworker``, collected for :mod:`worker.cli`."""

from __future__ import annotations

import click

ALL: list[click.Command] = []


def _prompts() -> click.Command:
    from worker.cli_prompts import prompts

    return prompts


ALL.append(_prompts())


def _ingress() -> click.Command:
    from worker.cli_ingress import ingress

    return ingress


ALL.append(_ingress())


def _goto() -> list[click.Command]:
    from worker.cli_goto import deprovision_command, provision_command

    return [provision_command, deprovision_command]


ALL.extend(_goto())


def _sandbox() -> click.Command:
    from worker.cli_sandbox import sandbox

    return sandbox


ALL.append(_sandbox())


def _node() -> list[click.Command]:
    from worker.cli_node import beat_command, node_status_command, worker_command

    return [worker_command, beat_command, node_status_command]


ALL.extend(_node())


def _up() -> list[click.Command]:
    from worker.cli_up import demo_command, up_command

    return [up_command, demo_command]


ALL.extend(_up())


def _calls() -> click.Command:
    from worker.cli_calls import calls_group

    return calls_group


ALL.append(_calls())


def _check() -> click.Command:
    from worker.cli_check import check

    return check


ALL.append(_check())


def _flows() -> click.Command:
    from worker.flows.cli import flows_group

    return flows_group


ALL.append(_flows())


def _flow_checker() -> None:
    from worker.flows.check import register

    register()


_flow_checker()  # flow files in `callworker check` (worker/cli_check.py's registry)
