"""Loading flow files: every file parsed, then checked together, into one immutable FlowSet.

::

    flows = load_flows("examples/attendant/flows")            # a folder, a file, or a list
    flows = load_flows(paths, prompts=PromptLibrary("my_prompts"))

Prompts come from ``prompts=`` when given, else from the files' own
``prompts:`` key (a folder relative to the file; every file that names one
must name the same), else the bundled ``audio_prompts/``.

Checked on load, each with its own :class:`~worker.flows.errors.FlowError`
kind: YAML syntax, unknown or missing keys, wrong types and values, unknown
step kinds, prompts that do not exist (or were never built), bad time zones,
regular expressions and templates, targets naming no step or flow (with a
suggestion), duplicate flow names, and steps that nothing reaches from a
flow's start (mark a step ``entry: true`` when an HTTP reply or another
flow goes to it by name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from yaml.nodes import MappingNode, Node

from worker.flows.errors import FlowError
from worker.flows.model import Flow, FlowSet, Target, targets_of
from worker.flows.parse import FlowFileParser
from worker.flows.yamlnodes import NodeReader, compose
from worker.media.audio import MediaError
from worker.media.prompts import MANIFEST_NAME, PromptLibrary
from worker.yamlfile import Entry, Stamp, line_of, stamp, suggest

logger = logging.getLogger(__name__)

FLOW_SUFFIXES = (".yaml", ".yml")
Source = str | Path | Sequence[str | Path]


def flow_files(source: Source) -> list[Path]:
    """The flow files of ``source``: a file, a folder (its *.yaml and *.yml), or a list of them."""
    items = [Path(source)] if isinstance(source, str | Path) else [Path(s) for s in source]
    files: list[Path] = []
    for item in items:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix in FLOW_SUFFIXES and p.is_file())
            if not found:
                raise FlowError("no flow files (*.yaml) in this folder", kind="no-flows", file=item)
            files.extend(found)
        else:
            files.append(item)
    if not files:
        raise FlowError("no flow files given", kind="no-flows", file=Path("."))
    return files


def signature(files: Iterable[Path], extra: Iterable[Path] = ()) -> Stamp:
    """(path, mtime_ns, size) of each file (-1 when missing): changes when any file changes."""
    return stamp([*files, *extra])


def top_level(path: Path) -> tuple[Node, dict[str, Entry]]:
    """The node tree and top-level entries of a flow file; FlowError if it is not one."""
    root = compose(path)
    reader = NodeReader(path)
    if not isinstance(root, MappingNode):
        raise FlowError(
            "not a flow file: expected a mapping with flow: (its name) and steps:",
            kind="not-a-flow",
            file=path,
            line=line_of(root),
        )
    entries = {e.name: e for e in reader.mapping(root, "")}
    missing = [key for key in ("flow", "steps") if key not in entries]
    if missing:
        raise FlowError(
            f"not a flow file: it has no {' and no '.join(m + ':' for m in missing)} "
            f"(top-level keys: {', '.join(entries) or 'none'})",
            kind="not-a-flow",
            file=path,
            line=line_of(root),
            key=missing[0],
        )
    return root, entries


def _library(
    prompts: PromptLibrary | str | Path | None, files: list[tuple[Path, Node, dict[str, Entry]]]
) -> PromptLibrary:
    if isinstance(prompts, PromptLibrary):
        return prompts
    folder: Path | None = Path(prompts) if prompts is not None else None
    declared_by: tuple[Path, int | None] | None = None
    if folder is None:
        for path, _root, entries in files:
            if "prompts" not in entries:
                continue
            node = entries["prompts"].node
            named = (path.parent / NodeReader(path).text(node, "prompts")).resolve()
            if not named.is_dir():
                raise FlowError(
                    f"prompt folder {named} does not exist",
                    kind="bad-value",
                    file=path,
                    line=line_of(node),
                    key="prompts",
                    value=str(named),
                )
            if folder is not None and named != folder:
                assert declared_by is not None
                raise FlowError(
                    f"names the prompt folder {named}, but {declared_by[0]}:{declared_by[1]} "
                    f"names {folder}; flows loaded together share one prompt folder",
                    kind="bad-value",
                    file=path,
                    line=line_of(node),
                    key="prompts",
                    value=str(named),
                )
            folder, declared_by = named, (path, line_of(node))
    if folder is None:
        from worker.config import BUNDLED_PROMPTS

        folder = BUNDLED_PROMPTS
    try:
        return PromptLibrary(folder)
    except MediaError as exc:
        raise FlowError(str(exc), kind="unreadable-file", file=folder / MANIFEST_NAME) from None


def load_flows(
    source: Source, *, prompts: PromptLibrary | str | Path | None = None, version: int = 1
) -> FlowSet:
    """Read, validate and return every flow of ``source``; FlowError on the first mistake."""
    files = flow_files(source)
    composed = [(path, *top_level(path)) for path in files]
    library = _library(prompts, composed)
    flows: dict[str, Flow] = {}
    for path, root, entries in composed:
        flow = FlowFileParser(path, entries, root, library).parse()
        if flow.name in flows:
            raise FlowError(
                f"flow {flow.name!r} is also defined in {flows[flow.name].file}; flow names "
                "must be unique",
                kind="duplicate-flow",
                file=path,
                line=line_of(entries["flow"].node),
                key="flow",
                value=flow.name,
            )
        flows[flow.name] = flow
    check_targets(flows)
    check_reachable(flows)
    manifest = library.folder / MANIFEST_NAME
    dirs = [Path(s) for s in ([source] if isinstance(source, str | Path) else source)]
    flow_set = FlowSet(
        flows=MappingProxyType(flows),
        prompts=library,
        files=tuple(files),
        loaded_at=datetime.now(UTC),
        version=version,
        signature=signature(files, [manifest, *[d for d in dirs if d.is_dir()]]),
    )
    logger.info("loaded %d flows from %d files: %s", len(flows), len(files), flow_set.summary())
    return flow_set


def _target_error(
    flow: Flow, step_name: str, option: str, target: Target, message: str, kind: str
) -> FlowError:
    step = flow.steps[step_name]
    return FlowError(
        message,
        kind=kind,
        file=flow.file,
        line=target.line or step.line,
        key=f"steps.{step_name}.{step.kind}.{option}",
        value=target.step if kind == "unknown-step" else target.flow,
    )


def check_targets(flows: dict[str, Flow]) -> None:
    """Every target names a step of its flow, or a flow (and a step of it) that exists."""
    for flow in flows.values():
        for name, step in flow.steps.items():
            for option, target in targets_of(step):
                into = flow
                if target.flow is not None:
                    if target.flow not in flows:
                        raise _target_error(
                            flow,
                            name,
                            option,
                            target,
                            f"goes to flow {target.flow!r}, which is not loaded"
                            f"{suggest(target.flow, flows)} (loaded: {', '.join(flows)})",
                            "unknown-flow",
                        )
                    into = flows[target.flow]
                if target.step is not None and target.step not in into.steps:
                    where = "" if into is flow else f" of flow {into.name!r}"
                    raise _target_error(
                        flow,
                        name,
                        option,
                        target,
                        f"goes to step {target.step!r}, which does not exist{where}"
                        f"{suggest(target.step, into.steps)}",
                        "unknown-step",
                    )


def check_reachable(flows: dict[str, Flow]) -> None:
    """Every step is reached from some flow's start or entry step."""
    roots = [(f.name, f.start) for f in flows.values()]
    roots += [(f.name, step) for f in flows.values() for step in f.entries]
    for flow in flows.values():
        for step in flow.steps.values():
            for _, target in targets_of(step):
                if target.flow is not None and target.step is not None:
                    roots.append((target.flow, target.step))
    reached: set[tuple[str, str]] = set()
    stack = list(roots)
    while stack:
        flow_name, step_name = stack.pop()
        if (flow_name, step_name) in reached:
            continue
        reached.add((flow_name, step_name))
        for _, target in targets_of(flows[flow_name].steps[step_name]):
            if target.flow is None:
                assert target.step is not None
                stack.append((flow_name, target.step))
            else:
                stack.append((target.flow, target.step or flows[target.flow].start))
    for flow in flows.values():
        for name, step in flow.steps.items():
            if (flow.name, name) not in reached:
                raise FlowError(
                    f"step {name!r} is never reached: no step goes to it from the start step "
                    f"{flow.start!r} (remove it, point a step at it, or mark it entry: true "
                    "if an HTTP reply or another flow goes to it by name)",
                    kind="unreachable-step",
                    file=flow.file,
                    line=step.line,
                    key=f"steps.{name}",
                    value=name,
                )


__all__ = [
    "FLOW_SUFFIXES",
    "check_reachable",
    "check_targets",
    "flow_files",
    "load_flows",
    "signature",
    "top_level",
]
