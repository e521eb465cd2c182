"""``callworker calls``: what happened to calls, from the store."""

from __future__ import annotations

import json
from datetime import datetime

import click

from worker.cli import CliError, friendly_errors, load_settings


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


@click.group("calls")
def calls_group() -> None:
    """List calls and show one call's record: events, path through its flow, recordings."""


@calls_group.command("list")
@click.option("--limit", default=20, show_default=True, help="How many of the newest calls.")
@click.option("--outcome", default=None, help="Only calls with this outcome.")
@friendly_errors
def list_command(limit: int, outcome: str | None) -> None:
    """The newest calls, one line each."""
    from worker.store import Store

    store = Store(load_settings().effective_database_url)
    rows = store.list_calls(limit=limit, outcome=outcome)
    if not rows:
        click.echo("no calls recorded yet")
        return
    header = ("started", "call id", "from", "ext", "state", "outcome", "duration")
    click.echo("{:<19}  {:<34} {:<16} {:<6} {:<9} {:<14} {}".format(*header))
    for row in rows:
        click.echo(
            f"{_when(row.created_at):<19}  {row.goto_call_id:<34} {row.caller_number:<16} "
            f"{row.extension:<6} {row.state:<9} {row.outcome or '-':<14} "
            f"{_seconds(row.created_at, row.ended_at)}"
        )


@calls_group.command("show")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@friendly_errors
def show_command(call_id: str, as_json: bool) -> None:
    """One call: who, when, the decision, the path through its flow, events and recordings."""
    from worker.store import Store

    store = Store(load_settings().effective_database_url)
    detail = store.get_call(call_id)
    if detail is None:
        raise CliError(
            f"no call {call_id!r} in the store; `callworker calls list` shows the newest"
        )
    call = detail.call
    if as_json:
        click.echo(
            json.dumps(
                {
                    "call": {k: v for k, v in vars(call).items()},
                    "events": [vars(e) for e in detail.events],
                    "recordings": [vars(r) for r in detail.recordings],
                },
                default=str,
                indent=2,
            )
        )
        return
    click.echo(f"call       {call.goto_call_id} ({call.direction})")
    click.echo(f"from       {call.caller_number or '-'} {call.caller_name}".rstrip())
    click.echo(f"extension  {call.extension or '-'}   node {call.node or '-'}")
    outcome, reason = call.outcome or "-", call.reason_code or "-"
    click.echo(f"state      {call.state}   outcome {outcome}   reason {reason}")
    click.echo(
        f"times      created {_when(call.created_at)}  answered {_when(call.answered_at)}  "
        f"ended {_when(call.ended_at)}  ({_seconds(call.created_at, call.ended_at)})"
    )
    if call.flow:
        click.echo(f"decision   {json.dumps(call.flow)}")
    if call.path:
        for step in call.path.get("steps", []):
            details = ", ".join(f"{k}={v}" for k, v in step.items() if k not in ("step", "at"))
            click.echo(f"  {step.get('at', 0):>7.2f}s  {step.get('step')}  {details}".rstrip())
        flow = call.path.get("flow")
        if isinstance(flow, dict):
            fixed = ("flow", "step", "kind", "at", "left_at")
            for entry in flow.get("path", []):
                details = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in fixed)
                where = f"{entry.get('flow')}.{entry.get('step')}"
                click.echo(
                    f"  {entry.get('at', 0):>7.2f}s  {where:<28} {entry.get('kind')}  {details}"
                )
            click.echo(f"flow       {flow.get('outcome')}: {flow.get('reason')}")
            for message in flow.get("messages", []):
                click.echo(f"message    {json.dumps(message)}")
        if call.path.get("digits"):
            click.echo(f"digits     {''.join(call.path['digits'])}")
    for event in detail.events:
        click.echo(f"event      {_when(event.timestamp)}  {event.type}  (on {event.node or '-'})")
    for rec in detail.recordings:
        click.echo(f"recording  {rec.path}  {rec.duration_seconds:.1f}s  {rec.size_bytes} bytes")
