"""``callworker prompts``: build text prompts with espeak-ng and list a prompt folder.

Kept free of heavy imports at module level (numpy, pydub load only when a
subcommand runs), so ``callworker --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _default_folder() -> Path:
    """CALLWORKER_PROMPTS_DIR, else the bundled audio_prompts/."""
    from worker.config import Settings

    return Settings.from_env().prompts_dir


def _fail(message: str) -> None:
    click.echo(f"callworker: {message}", err=True)
    sys.exit(1)


@click.group()
def prompts() -> None:
    """Audio prompts: build the text ones, list what a folder holds."""


@prompts.command("build")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=_default_folder,
    show_default="CALLWORKER_PROMPTS_DIR or the bundled audio_prompts/",
    help="Prompt folder with a manifest.yaml.",
)
@click.option("--voice", default=None, help="espeak-ng voice (default en-us).")
@click.option("--speed", type=click.IntRange(80, 450), default=None, help="Words per minute.")
@click.option(
    "--rate",
    "sample_rate",
    type=click.Choice(["8000", "16000", "24000", "48000"]),
    default="16000",
    show_default=True,
    help="Sample rate of the files written.",
)
@click.option("--force", is_flag=True, help="Rebuild files that already exist.")
@click.argument("names", nargs=-1)
def build(
    folder: Path,
    voice: str | None,
    speed: int | None,
    sample_rate: str,
    force: bool,
    names: tuple[str, ...],
) -> None:
    """Speak every manifest entry that has `text` (and generate `tone` entries) into FOLDER.

    Existing files are kept unless --force. Give NAMES to build only those.
    """
    from worker.media.audio import MediaError
    from worker.media.synth import DEFAULT_SPEED, DEFAULT_VOICE, build_prompts

    try:
        results = build_prompts(
            folder,
            voice=voice or DEFAULT_VOICE,
            speed=speed or DEFAULT_SPEED,
            sample_rate=int(sample_rate),
            force=force,
            only=names,
        )
    except (MediaError, OSError) as exc:
        _fail(str(exc))
        return
    for result in results:
        click.echo(f"{result.action:8} {result.name:20} {result.path}")
    if not results:
        click.echo(f"nothing to build in {folder}")


@prompts.command("list")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=_default_folder,
    show_default="CALLWORKER_PROMPTS_DIR or the bundled audio_prompts/",
    help="Prompt folder.",
)
def list_prompts(folder: Path) -> None:
    """Show each prompt with its duration, file and description."""
    from worker.media.audio import MediaError
    from worker.media.prompts import PromptLibrary

    try:
        library = PromptLibrary(folder)
    except (MediaError, OSError) as exc:
        _fail(str(exc))
        return
    names = library.names()
    if not names:
        click.echo(f"no prompts in {folder}")
        return
    for name in names:
        entry = library.entries.get(name)
        description = entry.description if entry is not None else "(not in the manifest)"
        try:
            path = library.path(name)
            duration = f"{library.get(name).duration:6.2f}s" if path.is_file() else " missing"
        except MediaError as exc:
            duration, path = "   error", Path(str(exc))
        click.echo(f"{name:20} {duration}  {path.name:24} {description}")
