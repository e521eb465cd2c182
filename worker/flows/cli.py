"""``callworker flows try``: run a flow against a scripted caller in a private sandbox.

::

    callworker flows try examples/attendant/flows --flow main --keys 2@1.0,1@5.5 --hangup-at 15

starts gotosim in-process (REST, webhooks and its real WebRTC far end, all on
127.0.0.1), places one inbound call whose caller follows the script, answers
it, runs the flow on it and prints the path through the flow, the keys, what
was played and when, the messages left, how the call ended, and where the
WAV of what the caller heard is. Nothing reaches GoTo. Heavy imports happen
only when the command runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click


def _keys(raw: str) -> list[dict[str, Any]]:
    presses: list[dict[str, Any]] = []
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        key, sep, at = item.partition("@")
        try:
            if not sep or not key:
                raise ValueError
            presses.append({"digit": key, "at": float(at)})
        except ValueError:
            raise click.BadParameter(f"expected KEY@SECONDS like 2@1.5, got {item!r}") from None
    return presses


@click.group("flows")
def flows_group() -> None:
    """IVR flows: try one against a scripted caller."""


@flows_group.command("try")
@click.argument("source", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--flow", "start_flow", required=True, help="The flow to start.")
@click.option("--keys", default="", help="Key presses, KEY@SECONDS,... (RFC 4733).")
@click.option(
    "--say",
    "audio",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="An audio file the caller says.",
)
@click.option("--say-at", type=float, default=0.0, show_default=True, help="When it starts.")
@click.option(
    "--hangup-at",
    type=float,
    default=60.0,
    show_default=True,
    help="When the caller hangs up (if the flow has not ended by then).",
)
@click.option(
    "--script",
    "script_json",
    default=None,
    help="A full caller script as JSON (docs/media-session.md); overrides the above.",
)
@click.option("--caller", default="+15145550199", show_default=True)
@click.option(
    "--now",
    "now_text",
    default=None,
    help="The time the flow sees, ISO 8601 with an offset (default: now).",
)
@click.option("--voicemail-number", default=None, help="Where the voicemail step transfers.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the heard WAV and messages go (default data/flows-try/<time>).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def try_command(
    source: tuple[Path, ...],
    start_flow: str,
    keys: str,
    audio: str | None,
    say_at: float,
    hangup_at: float,
    script_json: str | None,
    caller: str,
    now_text: str | None,
    voicemail_number: str | None,
    workdir: Path | None,
    as_json: bool,
) -> None:
    """Run flow --flow of SOURCE (flow files or folders) against a scripted caller."""
    from worker.flows.errors import FlowError
    from worker.flows.loader import load_flows

    try:
        flows = load_flows(list(source))
    except FlowError as exc:
        click.echo(f"callworker: {exc}", err=True)
        sys.exit(1)
    if start_flow not in flows:
        click.echo(f"callworker: no flow {start_flow!r} in {', '.join(flows)}", err=True)
        sys.exit(1)
    if script_json is not None:
        try:
            script = json.loads(script_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--script") from None
    else:
        script = {"digits": _keys(keys), "hangup_at": hangup_at}
        if audio is not None:
            script.update(audio=str(Path(audio).resolve()), audio_at=say_at)
    moment = datetime.fromisoformat(now_text) if now_text else None
    if moment is not None and moment.tzinfo is None:
        raise click.BadParameter("give an offset, e.g. 2026-03-04T10:00-05:00", param_hint="--now")
    folder = workdir or Path("data") / "flows-try" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    flows.prompts.preload()
    asyncio.run(_try(flows, start_flow, script, caller, moment, voicemail_number, folder, as_json))


async def _try(
    flows: Any,
    start_flow: str,
    script: Any,
    caller: str,
    moment: datetime | None,
    voicemail_number: str | None,
    folder: Path,
    as_json: bool,
) -> None:
    from worker.flows.testing import FlowSandbox

    async with FlowSandbox(folder, voicemail_number=voicemail_number) as sandbox:
        call = await sandbox.call(
            flows,
            start_flow,
            script=script,
            caller=caller,
            now=(lambda: moment) if moment is not None else (lambda: datetime.now(UTC)),
        )
    result = call.result
    if as_json:
        data = result.as_json()
        data["heard_wav"] = str(call.heard.wav_path)
        data["sandbox_outcome"] = call.sim_call.outcome
        data["transfer_target"] = call.sim_call.transfer_target
        click.echo(json.dumps(data, indent=2))
        return
    for entry in result.path:
        detail = ", ".join(f"{k}={v}" for k, v in entry.detail.items())
        click.echo(f"{entry.at:7.2f}s  {entry.flow}.{entry.step:24} {entry.kind:9} {detail}")
    for record in result.playbacks:
        how = "played" if record.finished else "cut"
        click.echo(f"  prompt {record.sound:24} {record.started_at}-{record.stopped_at}s {how}")
    for digit in result.digits:
        click.echo(f"  key    {digit.digit} at {digit.at:.2f}s ({digit.source})")
    for message in result.messages:
        click.echo(
            f"  message in box {message.box}: {message.duration_seconds:.1f}s {message.path}"
        )
    click.echo(f"outcome: {result.outcome} ({result.reason})")
    target = f" to {call.sim_call.transfer_target}" if call.sim_call.transfer_target else ""
    click.echo(f"sandbox: call {call.call_id} {call.sim_call.outcome}{target}")
    click.echo(f"heard:   {call.heard.wav_path}")


__all__ = ["flows_group"]
