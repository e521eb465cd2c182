"""IVR flows as files: the YAML format, the pure engine, and the driver that runs it on a call.

- :mod:`worker.flows.loader`: ``load_flows(path_or_folder) -> FlowSet``, validated on load
  (:mod:`worker.flows.parse` and :mod:`worker.flows.parse_values` read one file,
  :mod:`worker.flows.yamlnodes` keeps line numbers, with :mod:`worker.yamlfile`);
- :mod:`worker.flows.model`: the steps, flows and flow sets, as frozen values;
- :mod:`worker.flows.conditions`: ``branch`` conditions and ``${var}`` templates;
- :mod:`worker.flows.events`: the engine's events and actions, and ``FlowResult``;
- :mod:`worker.flows.engine`: ``FlowRun``, from state and event to the next action (no I/O);
- :mod:`worker.flows.driver`: ``run_flow``, the engine driven on a live ``CallSession``;
- :mod:`worker.flows.actions`: ``GoToCallActions``, hang up / transfer / voicemail via GoTo;
- :mod:`worker.flows.reload`: ``FlowReloader``, new versions for new calls only;
- :mod:`worker.flows.testing`: ``FlowSandbox``, a flow against a scripted caller in gotosim;
- :mod:`worker.flows.check`: flow files in ``callworker check``;
- :mod:`worker.flows.cli`: ``callworker flows try``.

The file format and every step are described in docs/flows.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.flows.errors import FlowError, FlowsError, FlowStateError
    from worker.flows.events import FlowCall, FlowResult, Outcome
    from worker.flows.loader import load_flows
    from worker.flows.model import Flow, FlowSet

# Imported on first use, so that `callworker --help` and `callworker check` stay quick.
_WHERE = {
    "FlowError": "worker.flows.errors",
    "FlowsError": "worker.flows.errors",
    "FlowStateError": "worker.flows.errors",
    "FlowCall": "worker.flows.events",
    "FlowResult": "worker.flows.events",
    "Outcome": "worker.flows.events",
    "load_flows": "worker.flows.loader",
    "Flow": "worker.flows.model",
    "FlowSet": "worker.flows.model",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'worker.flows' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Flow",
    "FlowCall",
    "FlowError",
    "FlowResult",
    "FlowSet",
    "FlowStateError",
    "FlowsError",
    "Outcome",
    "load_flows",
]
