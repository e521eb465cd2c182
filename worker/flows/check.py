"""``callworker check`` for flow files: validate one without running anything.

A flow file can go to other flows by name, so checking one loads it together
with the other flow files of its folder (files there that are not flow files
are left out). Importing this module is cheap (the loader loads on
first use). Registered with :func:`worker.cli_check.register_checker` for
files whose top level has ``flow:``, by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path

from worker.flows.errors import FlowError


def _is_flow_file(path: Path) -> bool:
    from worker.flows.loader import top_level

    try:
        top_level(path)
    except FlowError:
        return False
    return True


def check_flow_file(path: Path) -> str:
    """A one-line summary of a valid flow file; FlowError naming file and line otherwise."""
    from worker.flows.loader import FLOW_SUFFIXES, load_flows, top_level

    path = Path(path)
    top_level(path)  # a clear error for this file first
    folder = path.parent
    siblings = sorted(
        p
        for p in folder.iterdir()
        if p.suffix in FLOW_SUFFIXES and p.is_file() and p.resolve() != path.resolve()
    )
    others = [p for p in siblings if _is_flow_file(p)]
    flows = load_flows([path, *others])
    (flow,) = [f for f in flows.flows.values() if f.file.resolve() == path.resolve()]
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(flow.kinds().items()))
    with_others = f", checked with {len(others)} other flows of its folder" if others else ""
    return (
        f"flow {flow.name!r}: {len(flow.steps)} steps ({kinds}), prompts from "
        f"{flows.prompts.folder}{with_others}"
    )


def register() -> None:
    """Add flow files to ``callworker check``."""
    from worker.cli_check import register_checker

    register_checker("flow", check_flow_file, errors=(FlowError,))


__all__ = ["check_flow_file", "register"]
