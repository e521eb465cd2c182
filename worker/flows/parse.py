"""Reading one flow file's node tree into a :class:`~worker.flows.model.Flow`.

:class:`FlowFileParser` checks everything one file can check on its own:
types, keys, values, time zones, regular expressions, templates and that
every prompt exists in the prompt folder (a ``text:`` prompt must have been
built with ``callworker prompts build``); values inside steps (targets,
templates, conditions) are read by :mod:`worker.flows.parse_values`.
Targets naming other steps and flows, and reachability, need every flow and
are checked by :mod:`worker.flows.loader`.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worker.flows.conditions import (
    Condition,
    Template,
)
from worker.flows.model import (
    BUILTIN_BEEP,
    DIGIT_PROMPTS,
    KEYS,
    NUMBER_PROMPTS,
    STEP_KINDS,
    Branch,
    Flow,
    Gather,
    Goto,
    Hangup,
    Http,
    Menu,
    Pause,
    Play,
    Record,
    Say,
    SetVars,
    Step,
    Target,
    Transfer,
    Voicemail,
)
from worker.flows.parse_values import ValueParser, check_zone
from worker.flows.yamlnodes import NodeReader
from worker.media.prompts import MANIFEST_NAME, PromptLibrary
from worker.yamlfile import Entry, line_of, suggest

TOP_KEYS = ("flow", "description", "start", "timezone", "prompts", "steps")
STEP_KEYS = ("next", "entry", "note")
SEQUENTIAL = frozenset({"play", "pause", "gather", "record", "say", "set", "http"})
"""Kinds that go on to the following step of the file when they have no ``next``."""

_STEP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


class FlowFileParser(ValueParser):
    """Parses one flow file whose top-level mapping is ``entries``."""

    def __init__(
        self, file: Path, entries: dict[str, Entry], root: Node, prompts: PromptLibrary
    ) -> None:
        self.file = file
        self.reader = NodeReader(file)
        self.entries = entries
        self.root = root
        self.prompts = prompts
        self.timezone = "UTC"
        self.step_names: list[str] = []

    # -- the file ----------------------------------------------------------------------

    def parse(self) -> Flow:
        r = self.reader
        r.refuse_unknown(
            self.entries.values(),
            TOP_KEYS,
            kind="unknown-key",
            what="top-level key",
            then=f"a flow file has: {', '.join(TOP_KEYS)}",
        )
        name = r.name(self.entries["flow"].node, "flow", "a flow name")
        if not _STEP_NAME.match(name):
            raise r.error(
                "bad-value",
                f"a flow name is letters, digits, '_', '-' and '.', got {name!r}",
                self.entries["flow"].node,
                "flow",
                name,
            )
        description = ""
        if "description" in self.entries:
            description = r.text(self.entries["description"].node, "description")
        if "timezone" in self.entries:
            self.timezone = check_zone(r, self.entries["timezone"].node, "timezone")
        steps_node = self.entries["steps"].node
        step_entries = r.mapping(steps_node, "steps", "a mapping of step name to step")
        if not step_entries:
            raise r.error("missing-key", "a flow needs at least one step", steps_node, "steps")
        self.step_names = [e.name for e in step_entries]
        for entry in step_entries:
            if not _STEP_NAME.match(entry.name):
                raise r.error(
                    "bad-value",
                    f"a step name is letters, digits, '_', '-' and '.', got {entry.name!r}",
                    entry.key_node,
                    f"steps.{entry.name}",
                    entry.name,
                )
        start = self.step_names[0]
        if "start" in self.entries:
            node = self.entries["start"].node
            start = r.name(node, "start", "a step name")
            if start not in self.step_names:
                raise r.error(
                    "unknown-step",
                    f"the start step {start!r} is not a step of this flow"
                    f"{suggest(start, self.step_names)}",
                    node,
                    "start",
                    start,
                )
        steps: dict[str, Step] = {}
        entries: set[str] = set()
        for index, entry in enumerate(step_entries):
            following = self.step_names[index + 1] if index + 1 < len(step_entries) else None
            step, is_entry = self._step(entry, following)
            steps[entry.name] = step
            if is_entry:
                entries.add(entry.name)
        return Flow(
            name=name,
            file=self.file,
            start=start,
            steps=MappingProxyType(steps),
            timezone=self.timezone,
            description=description,
            entries=frozenset(entries),
        )

    # -- one step ----------------------------------------------------------------------

    def _step(self, entry: Entry, following: str | None) -> tuple[Step, bool]:
        r = self.reader
        where = f"steps.{entry.name}"
        options = r.mapping(entry.node, where, f"a step (a mapping with one of {STEP_KINDS})")
        kinds = [o for o in options if o.name in STEP_KINDS]
        others = [o for o in options if o.name not in STEP_KINDS and o.name not in STEP_KEYS]
        if len(kinds) > 1:
            raise r.error(
                "two-step-kinds",
                f"a step does one thing, this one has {', '.join(k.name for k in kinds)}; "
                "split it into two steps",
                kinds[1].key_node,
                where,
                kinds[1].name,
            )
        if not kinds:
            if others:
                bad = others[0]
                raise r.error(
                    "unknown-step-kind",
                    f"unknown step kind {bad.name!r}{suggest(bad.name, STEP_KINDS)}; "
                    f"a step is one of: {', '.join(STEP_KINDS)}",
                    bad.key_node,
                    where,
                    bad.name,
                )
            raise r.error(
                "no-step-kind",
                f"step {entry.name!r} does nothing: give it one of {', '.join(STEP_KINDS)}",
                entry.key_node,
                where,
            )
        if others:
            bad = others[0]
            raise r.error(
                "unknown-key",
                f"unknown key {bad.name!r}{suggest(bad.name, STEP_KEYS)} beside "
                f"{kinds[0].name}:; options of a {kinds[0].name} step go under {kinds[0].name}:, "
                f"and a step itself takes only: {', '.join(STEP_KEYS)}",
                bad.key_node,
                where,
                bad.name,
            )
        kind = kinds[0]
        by_name = {o.name: o for o in options}
        is_entry = False
        if "entry" in by_name:
            is_entry = r.boolean(by_name["entry"].node, f"{where}.entry")
        if "note" in by_name:
            r.text(by_name["note"].node, f"{where}.note")
        next_target: Target | None = None
        if "next" in by_name:
            if kind.name not in SEQUENTIAL:
                raise r.error(
                    "unknown-key",
                    f"a {kind.name} step does not take next: (it decides where to go itself)",
                    by_name["next"].key_node,
                    where,
                    "next",
                )
            next_target = self.target(by_name["next"].node, f"{where}.next")
        elif kind.name in SEQUENTIAL and following is not None:
            next_target = Target(None, following)
        key = f"{where}.{kind.name}"
        line = line_of(entry.key_node) or 0
        build = getattr(self, f"_{kind.name}")
        step: Step = build(entry.name, line, kind.node, key, next_target, following)
        return step, is_entry

    def _play(
        self, name: str, line: int, node: Node, key: str, nxt: Target | None, _f: str | None
    ) -> Play:
        if isinstance(node, MappingNode) and not self._is_text_spec(node):
            opts = self.reader.options(node, key, ("prompt", "barge_in"), ("prompt",))
            barge_in = self._bool(opts, "barge_in", key, True)
            return Play(
                name, line, self.prompt_list(opts["prompt"].node, f"{key}.prompt"), barge_in, nxt
            )
        return Play(name, line, self.prompt_list(node, key), True, nxt)

    def _pause(
        self, name: str, line: int, node: Node, key: str, nxt: Target | None, _f: str | None
    ) -> Pause:
        if isinstance(node, MappingNode):
            opts = self.reader.options(node, key, ("seconds", "barge_in"), ("seconds",))
            seconds = self.reader.number(opts["seconds"].node, f"{key}.seconds", maximum=600)
            return Pause(name, line, seconds, self._bool(opts, "barge_in", key, True), nxt)
        return Pause(name, line, self.reader.number(node, key, maximum=600), True, nxt)

    def _gather(
        self, name: str, line: int, node: Node, key: str, nxt: Target | None, _f: str | None
    ) -> Gather:
        r = self.reader
        allowed = (
            "prompt",
            "max_digits",
            "finish_key",
            "first_digit_timeout",
            "inter_digit_timeout",
            "barge_in",
            "into",
            "no_digits",
        )
        opts = r.options(node, key, allowed)
        finish: str | None = "#"
        if "finish_key" in opts:
            finish = self.key_or_none(opts["finish_key"].node, f"{key}.finish_key")
        return Gather(
            name,
            line,
            prompts=self.prompt_list(opts["prompt"].node, f"{key}.prompt")
            if "prompt" in opts
            else (),
            max_digits=(
                r.integer(opts["max_digits"].node, f"{key}.max_digits", minimum=1, maximum=64)
                if "max_digits" in opts
                else 20
            ),
            finish_key=finish,
            first_digit_timeout=self._seconds(opts, "first_digit_timeout", key, 5.0),
            inter_digit_timeout=self._seconds(opts, "inter_digit_timeout", key, 3.0),
            barge_in=self._bool(opts, "barge_in", key, True),
            into=self._variable(opts, "into", key) or "digits",
            next=nxt,
            no_digits=(
                self.target(opts["no_digits"].node, f"{key}.no_digits")
                if "no_digits" in opts
                else None
            ),
        )

    def _menu(
        self, name: str, line: int, node: Node, key: str, _n: Target | None, _f: str | None
    ) -> Menu:
        r = self.reader
        allowed = (
            "prompt",
            "choices",
            "invalid",
            "no_input",
            "timeout",
            "retries",
            "fallback",
            "barge_in",
            "into",
        )
        opts = r.options(node, key, allowed, ("prompt", "choices"))
        choices: list[tuple[str, Target]] = []
        choice_entries = r.mapping(
            opts["choices"].node, f"{key}.choices", "a mapping of key to step"
        )
        if not choice_entries:
            raise r.error(
                "missing-key",
                "a menu needs at least one choice",
                opts["choices"].node,
                f"{key}.choices",
            )
        for entry in choice_entries:
            digit = entry.name.upper()
            if len(digit) != 1 or digit not in KEYS:
                raise r.error(
                    "bad-value",
                    f"a choice is one key of {KEYS}, got {entry.name!r}",
                    entry.key_node,
                    f"{key}.choices",
                    entry.name,
                )
            choices.append((digit, self.target(entry.node, f"{key}.choices.{entry.name}")))
        return Menu(
            name,
            line,
            prompts=self.prompt_list(opts["prompt"].node, f"{key}.prompt"),
            choices=tuple(choices),
            invalid=self._prompts_opt(opts, "invalid", key),
            no_input=self._prompts_opt(opts, "no_input", key),
            timeout=self._seconds(opts, "timeout", key, 5.0),
            retries=(
                r.integer(opts["retries"].node, f"{key}.retries", maximum=10)
                if "retries" in opts
                else 2
            ),
            fallback=self.target(opts["fallback"].node, f"{key}.fallback")
            if "fallback" in opts
            else None,
            barge_in=self._bool(opts, "barge_in", key, True),
            into=self._variable(opts, "into", key),
        )

    def _record(
        self, name: str, line: int, node: Node, key: str, nxt: Target | None, _f: str | None
    ) -> Record:
        r = self.reader
        allowed = ("box", "greeting", "beep", "max_seconds", "silence_seconds", "finish_key")
        opts = r.options(node, key, allowed) if not r.is_null(node) else {}
        box = self.flow_name_for_box()
        if "box" in opts:
            box = r.text(opts["box"].node, f"{key}.box", numeric=True)
            if not _STEP_NAME.match(box):
                raise r.error(
                    "bad-value",
                    f"a box name is letters, digits, '_', '-', '.', got {box!r}",
                    opts["box"].node,
                    f"{key}.box",
                    box,
                )
        beep: str | None = BUILTIN_BEEP if not self._has_prompt("beep") else "beep"
        if "beep" in opts:
            beep_node = opts["beep"].node
            if isinstance(beep_node, ScalarNode) and beep_node.tag.endswith(":bool"):
                beep = beep if r.boolean(beep_node, f"{key}.beep") else None
            else:
                beep = self.prompt_list(beep_node, f"{key}.beep")[0]
        silence: float | None = 5.0
        if "silence_seconds" in opts:
            s_node = opts["silence_seconds"].node
            silence = (
                None
                if r.is_null(s_node)
                else r.number(s_node, f"{key}.silence_seconds", maximum=60)
            )
        finish: str | None = "#"
        if "finish_key" in opts:
            finish = self.key_or_none(opts["finish_key"].node, f"{key}.finish_key")
        return Record(
            name,
            line,
            box=box,
            greeting=self._prompts_opt(opts, "greeting", key),
            beep=beep,
            max_seconds=(
                r.number(opts["max_seconds"].node, f"{key}.max_seconds", maximum=3600)
                if "max_seconds" in opts
                else 120.0
            ),
            silence_seconds=silence,
            finish_key=finish,
            next=nxt,
        )

    def _say(
        self, name: str, line: int, node: Node, key: str, nxt: Target | None, _f: str | None
    ) -> Say:
        r = self.reader
        opts = r.options(node, key, ("digits", "number", "barge_in"))
        modes = [m for m in ("digits", "number") if m in opts]
        if len(modes) != 1:
            raise r.error("missing-key", "say needs exactly one of digits: or number:", node, key)
        mode = modes[0]
        value = self.template(opts[mode].node, f"{key}.{mode}")
        needed = DIGIT_PROMPTS if mode == "digits" else NUMBER_PROMPTS
        missing = [p for p in needed if not self._has_prompt(p)]
        if missing:
            raise r.error(
                "missing-prompt",
                f"say {mode}: needs the prompts {', '.join(missing)}, which "
                f"{self.prompts.folder} does not have (add them to its {MANIFEST_NAME} and run "
                f"`callworker prompts build --folder {self.prompts.folder}`)",
                opts[mode].key_node,
                f"{key}.{mode}",
                missing,
            )
        return Say(name, line, mode, value, self._bool(opts, "barge_in", key, True), nxt)

    def _set(
        self, name: str, line: int, node: Node, key: str, nxt: Target | None, _f: str | None
    ) -> SetVars:
        values: list[tuple[str, Template]] = []
        entries = self.reader.mapping(node, key, "a mapping of variable to value")
        if not entries:
            raise self.reader.error("missing-key", "set needs at least one variable", node, key)
        for entry in entries:
            self.variable_name(entry.name, entry.key_node, key)
            values.append((entry.name, self.template(entry.node, f"{key}.{entry.name}")))
        return SetVars(name, line, tuple(values), nxt)

    def _branch(
        self, name: str, line: int, node: Node, key: str, _n: Target | None, following: str | None
    ) -> Branch:
        r = self.reader
        opts = r.options(node, key, ("cases", "else"), ("cases",))
        cases: list[tuple[Condition, Target]] = []
        for index, case_node in enumerate(r.sequence(opts["cases"].node, f"{key}.cases")):
            where = f"{key}.cases.{index}"
            case = r.options(case_node, where, ("when", "goto"), ("when", "goto"))
            condition = self.condition(case["when"].node, f"{where}.when", self.timezone)
            cases.append((condition, self.target(case["goto"].node, f"{where}.goto")))
        otherwise = Target(None, following) if following is not None else None
        if "else" in opts:
            otherwise = self.target(opts["else"].node, f"{key}.else")
        return Branch(name, line, tuple(cases), otherwise)

    def _transfer(
        self, name: str, line: int, node: Node, key: str, _n: Target | None, _f: str | None
    ) -> Transfer:
        if isinstance(node, MappingNode):
            opts = self.reader.options(node, key, ("to", "fallback"), ("to",))
            fallback = (
                self.target(opts["fallback"].node, f"{key}.fallback")
                if "fallback" in opts
                else None
            )
            return Transfer(
                name, line, self.number_template(opts["to"].node, f"{key}.to"), fallback
            )
        return Transfer(name, line, self.number_template(node, key))

    def _voicemail(
        self, name: str, line: int, node: Node, key: str, _n: Target | None, _f: str | None
    ) -> Voicemail:
        r = self.reader
        if r.is_null(node):
            return Voicemail(name, line)
        if isinstance(node, MappingNode):
            opts = r.options(node, key, ("number", "fallback"))
            number = (
                self.number_template(opts["number"].node, f"{key}.number")
                if "number" in opts
                else None
            )
            fallback = (
                self.target(opts["fallback"].node, f"{key}.fallback")
                if "fallback" in opts
                else None
            )
            return Voicemail(name, line, number, fallback)
        return Voicemail(name, line, self.number_template(node, key))

    def _hangup(
        self, name: str, line: int, node: Node, key: str, _n: Target | None, _f: str | None
    ) -> Hangup:
        r = self.reader
        empty = r.is_null(node) or (isinstance(node, MappingNode) and not node.value)
        if not empty and not r.boolean(node, key):
            raise r.error("bad-value", "hangup: takes nothing, {} or true", node, key, False)
        return Hangup(name, line)

    def _goto(
        self, name: str, line: int, node: Node, key: str, _n: Target | None, _f: str | None
    ) -> Goto:
        return Goto(name, line, self.target(node, key))

    def _http(
        self, name: str, line: int, node: Node, key: str, nxt: Target | None, _f: str | None
    ) -> Http:
        r = self.reader
        opts = r.options(node, key, ("url", "timeout", "headers", "fallback"), ("url", "fallback"))
        url = r.text(opts["url"].node, f"{key}.url")
        if not re.match(r"https?://[^/\s]+", url):
            raise r.error(
                "bad-value",
                f"expected an http:// or https:// URL, got {url!r}",
                opts["url"].node,
                f"{key}.url",
                url,
            )
        headers: list[tuple[str, str]] = []
        if "headers" in opts:
            for entry in r.mapping(opts["headers"].node, f"{key}.headers"):
                headers.append(
                    (entry.name, r.text(entry.node, f"{key}.headers.{entry.name}", numeric=True))
                )
        return Http(
            name,
            line,
            url=url,
            fallback=self.target(opts["fallback"].node, f"{key}.fallback"),
            timeout=self._seconds(opts, "timeout", key, 5.0, maximum=60.0),
            headers=tuple(headers),
            next=nxt,
        )

    # -- values ------------------------------------------------------------------------

    # -- prompts -----------------------------------------------------------------------

    def _is_text_spec(self, node: MappingNode) -> bool:
        return [str(k.value) for k, _ in node.value] == ["text"]

    def prompt_list(self, node: Node, key: str) -> tuple[str, ...]:
        """A prompt name, ``{text: ...}``, or a list of those; each must exist."""
        r = self.reader
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not items:
            raise r.error("bad-value", "expected at least one prompt, got []", node, key, [])
        names: list[str] = []
        for item in items:
            if isinstance(item, MappingNode):
                opts = r.options(item, key, ("text",), ("text",), what="a text prompt")
                names.append(self._prompt_by_text(opts["text"].node, f"{key}.text"))
            else:
                name = r.text(item, key, numeric=True)
                self._require_prompt(name, item, key)
                names.append(name)
        return tuple(names)

    def _prompts_opt(self, opts: dict[str, Entry], name: str, key: str) -> tuple[str, ...]:
        return self.prompt_list(opts[name].node, f"{key}.{name}") if name in opts else ()

    def _has_prompt(self, name: str) -> bool:
        try:
            return self.prompts.path(name).is_file()
        except Exception:
            return False

    def _require_prompt(self, name: str, node: Node, key: str) -> None:
        folder = self.prompts.folder
        if name not in self.prompts:
            known = self.prompts.names()
            raise self.reader.error(
                "missing-prompt",
                f"no prompt named {name!r} in {folder}{suggest(name, known)}; add it to "
                f"{folder / MANIFEST_NAME} (with text: to synthesize it) or put {name}.wav there",
                node,
                key,
                name,
            )
        path = self.prompts.path(name)
        if not path.is_file():
            raise self.reader.error(
                "missing-prompt",
                f"prompt {name!r} is in {folder / MANIFEST_NAME} but {path.name} is not there; "
                f"run `callworker prompts build --folder {folder}`",
                node,
                key,
                name,
            )

    def _prompt_by_text(self, node: Node, key: str) -> str:
        text = self.reader.text(node, key)
        wanted = " ".join(text.split()).casefold()
        for name, entry in self.prompts.entries.items():
            if entry.text is not None and " ".join(entry.text.split()).casefold() == wanted:
                self._require_prompt(name, node, key)
                return name
        folder = self.prompts.folder
        raise self.reader.error(
            "missing-prompt",
            f"no prompt in {folder / MANIFEST_NAME} says {text!r}; add an entry with this text: "
            f"and run `callworker prompts build --folder {folder}` (prompts are built ahead, "
            "never during a call)",
            node,
            key,
            text,
        )

    # -- small helpers -----------------------------------------------------------------

    def flow_name_for_box(self) -> str:
        return self.reader.name(self.entries["flow"].node, "flow", "a flow name")

    def _bool(self, opts: dict[str, Entry], name: str, key: str, default: bool) -> bool:
        return self.reader.boolean(opts[name].node, f"{key}.{name}") if name in opts else default

    def _seconds(
        self, opts: dict[str, Entry], name: str, key: str, default: float, maximum: float = 600.0
    ) -> float:
        if name not in opts:
            return default
        return self.reader.number(opts[name].node, f"{key}.{name}", maximum=maximum)

    def _variable(self, opts: dict[str, Entry], name: str, key: str) -> str | None:
        if name not in opts:
            return None
        text = self.reader.text(opts[name].node, f"{key}.{name}")
        return self.variable_name(text, opts[name].node, f"{key}.{name}")


__all__ = ["SEQUENTIAL", "STEP_KEYS", "TOP_KEYS", "FlowFileParser"]
