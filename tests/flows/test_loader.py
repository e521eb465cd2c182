"""Loading flow files: the example loads, and each kind of mistake has its own clear error.

Every bad file is checked for the error's kind, file, line, key and value,
and for a message a person can act on.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.flows.conftest import flows_from, write_flow
from worker.flows import FlowError, load_flows
from worker.flows.check import check_flow_file, register
from worker.flows.model import Menu, Target

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "attendant" / "flows"

GOOD_STEPS = """
    flow: main
    steps:
      welcome:
        play: greeting
      main_menu:
        menu:
          prompt: menu
          choices: {"1": sales, "2": support}
          fallback: sales
      sales:
        play: ok
      support:
        play: ok
"""


def load_error(tmp_path: Path, prompts: Path, text: str, **others: str) -> FlowError:
    with pytest.raises(FlowError) as caught:
        flows_from(tmp_path, prompts, main=text, **others)
    return caught.value


def test_the_example_attendant_loads() -> None:
    flows = load_flows(EXAMPLE)
    assert set(flows) == {"main", "after_hours", "holiday"}
    assert flows.prompts.folder == (ROOT / "examples" / "attendant" / "prompts").resolve()
    main = flows.flow("main")
    menu = main.step("main_menu")
    assert isinstance(menu, Menu)
    assert menu.choice_map == {
        "1": Target(None, "sales"),
        "2": Target(None, "support"),
        "0": Target(None, "operator"),
    }
    # every prompt the flows name is there, built
    for name in flows.prompts.names():
        assert flows.prompts.path(name).is_file(), name
    assert flows.flow("after_hours").step("closed").prompts == ("after_hours",)  # type: ignore[union-attr]


BAD_FILES = [
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            plya: greeting
        """,
        ("unknown-step-kind", 4, "steps.welcome", "plya"),
        "unknown step kind 'plya' (did you mean 'play'?)",
        id="unknown-step-kind",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: greeting
            menu: {prompt: menu, choices: {"1": welcome}}
        """,
        ("two-step-kinds", 5, "steps.welcome", "menu"),
        "this one has play, menu; split it into two steps",
        id="two-step-kinds",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            next: welcome
        """,
        ("no-step-kind", 3, "steps.welcome", None),
        "step 'welcome' does nothing",
        id="no-step-kind",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: greetings
        """,
        ("missing-prompt", 4, "steps.welcome.play", "greetings"),
        "no prompt named 'greetings' in",
        id="missing-prompt",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: {text: "Hello, caller!"}
        """,
        ("missing-prompt", 4, "steps.welcome.play.text", "Hello, caller!"),
        "says 'Hello, caller!'; add an entry with this text: and run `callworker prompts build",
        id="text-prompt-not-in-the-manifest",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: {text: "This one was never built."}
        """,
        ("missing-prompt", 4, "steps.welcome.play.text", "unbuilt"),
        "unbuilt.wav is not there; run `callworker prompts build --folder",
        id="text-prompt-not-built",
    ),
    pytest.param(
        """
        flow: main
        steps:
          main_menu:
            menu:
              prompt: menu
              choices:
                "1": sales
                "2": suport
          sales:
            play: ok
            next: main_menu
          support:
            play: ok
            next: main_menu
        """,
        ("unknown-step", 8, "steps.main_menu.menu.choices.2", "suport"),
        "goes to step 'suport', which does not exist (did you mean 'support'?)",
        id="menu-choice-pointing-nowhere",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            goto: {flow: sales}
        """,
        ("unknown-flow", 4, "steps.welcome.goto.goto", "sales"),
        "goes to flow 'sales', which is not loaded",
        id="goto-unknown-flow",
    ),
    pytest.param(
        """
        flow: main
        timezone: Europe/Pariss
        steps:
          welcome:
            play: greeting
        """,
        ("bad-timezone", 2, "timezone", "Europe/Pariss"),
        "'Europe/Pariss' is not an IANA time zone",
        id="bad-time-zone",
    ),
    pytest.param(
        """
        flow: main
        steps:
          hours:
            branch:
              cases:
                - when: {time: ["09:00", "17:00"], zone: Mars/Olympus}
                  goto: open
          open:
            play: ok
        """,
        ("bad-timezone", 6, "steps.hours.branch.cases.0.when.zone", "Mars/Olympus"),
        "'Mars/Olympus' is not an IANA time zone",
        id="bad-time-zone-in-a-condition",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: greeting
          goodbye:
            hangup: {}
          orphan:
            play: ok
        """,
        ("unreachable-step", 7, "steps.orphan", "orphan"),
        "step 'orphan' is never reached: no step goes to it from the start step 'welcome'",
        id="unreachable-step",
    ),
    pytest.param(
        """
        flow: main
        steps:
          main_menu:
            menu:
              prompt: menu
        """,
        ("missing-key", 5, "steps.main_menu.menu", None),
        "needs choices:",
        id="missing-required-field",
    ),
    pytest.param(
        """
        flow: main
        steps:
          main_menu:
            menu:
              prompt: menu
              choices: {"1": main_menu}
              timeout: five
        """,
        ("wrong-type", 7, "steps.main_menu.menu.timeout", "five"),
        "expected a number, got 'five'",
        id="wrong-type",
    ),
    pytest.param(
        """
        flow: main
        steps:
          ask:
            gather: {max_digits: 0}
        """,
        ("bad-value", 4, "steps.ask.gather.max_digits", 0),
        "expected a whole number from 1 to 64, got 0",
        id="bad-value",
    ),
    pytest.param(
        """
        flow: main
        steps:
          ask:
            gather: {max_digit: 4}
        """,
        ("unknown-key", 4, "steps.ask.gather", "max_digit"),
        "unknown option 'max_digit' (did you mean 'max_digits'?)",
        id="unknown-option",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: greeting
            nxt: welcome
        """,
        ("unknown-key", 5, "steps.welcome", "nxt"),
        "unknown key 'nxt' (did you mean 'next'?) beside play:",
        id="unknown-step-key",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: greeting
          welcome:
            play: ok
        """,
        ("duplicate-key", 5, "steps", "welcome"),
        "'welcome' appears twice (first on line 3)",
        id="duplicate-step",
    ),
    pytest.param(
        """
        flow: main
        steps:
          hours:
            branch:
              cases:
                - when: {time: ["9h", "17:00"]}
                  goto: open
          open:
            play: ok
        """,
        ("bad-time", 6, "steps.hours.branch.cases.0.when.time", "9h"),
        "expected a time of day HH:MM",
        id="bad-time",
    ),
    pytest.param(
        """
        flow: main
        steps:
          route:
            branch:
              cases:
                - when: {var: caller, matches: "(+1"}
                  goto: open
          open:
            play: ok
        """,
        ("bad-pattern", 6, "steps.route.branch.cases.0.when.matches", "(+1"),
        "not a regular expression",
        id="bad-regex",
    ),
    pytest.param(
        """
        flow: main
        steps:
          remember:
            set: {who: "${caller-name}"}
        """,
        ("bad-template", 4, "steps.remember.set.who", "${caller-name}"),
        "'${caller-name}' is not a variable",
        id="bad-template",
    ),
    pytest.param(
        """
        flow: main
        steps:
          operator:
            transfer: "front desk"
        """,
        ("bad-value", 4, "steps.operator.transfer", "front desk"),
        "expected a number to dial",
        id="bad-number",
    ),
    pytest.param(
        """
        flow: main
        steps:
          lookup:
            http: {url: "ftp://example.org", fallback: lookup}
        """,
        ("bad-value", 4, "steps.lookup.http.url", "ftp://example.org"),
        "expected an http:// or https:// URL",
        id="bad-url",
    ),
    pytest.param(
        """
        flow: main
        steps:
          lookup:
            http: {url: "http://127.0.0.1:1/x"}
        """,
        ("missing-key", 4, "steps.lookup.http", None),
        "needs fallback:",
        id="http-without-fallback",
    ),
    pytest.param(
        """
        flow: main
        steps: [play, menu]
        """,
        ("wrong-type", 2, "steps", None),
        "expected a mapping of step name to step, got a list",
        id="steps-not-a-mapping",
    ),
    pytest.param(
        """
        name: main
        steps:
          welcome:
            play: greeting
        """,
        ("not-a-flow", 1, "flow", None),
        "not a flow file: it has no flow:",
        id="not-a-flow",
    ),
    pytest.param(
        """
        flow: main
        steps:
          welcome:
            play: [greeting
        """,
        ("yaml-syntax", 5, "", None),
        "not valid YAML",
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "where", "message"), BAD_FILES)
def test_each_mistake_has_its_own_clear_error(
    tmp_path: Path,
    prompt_folder: Path,
    text: str,
    where: tuple[str, int, str, object],
    message: str,
) -> None:
    error = load_error(tmp_path, prompt_folder, text)
    kind, line, key, value = where
    assert (error.kind, error.line, error.key) == (kind, line, key), str(error)
    if value is not None:
        assert error.value == value, str(error)
    assert error.file == tmp_path / "main.yaml"
    assert message in str(error), str(error)
    shown = str(error)
    assert shown.startswith(f"{tmp_path / 'main.yaml'}:{line}:"), shown


def test_say_needs_its_prompts(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "digit_1.wav").write_bytes(b"")
    error = load_error(
        tmp_path,
        prompts,
        """
        flow: main
        steps:
          hello:
            say: {number: "${amount}"}
        """,
    )
    assert (error.kind, error.line, error.key) == ("missing-prompt", 4, "steps.hello.say.number")
    assert isinstance(error.value, list) and "digit_0" in error.value
    assert "digit_1" not in error.value and "num_thousand" in error.value
    assert "say number: needs the prompts digit_0, digit_2," in str(error)


def test_a_flow_name_used_twice_names_both_files(tmp_path: Path, prompt_folder: Path) -> None:
    error = load_error(tmp_path, prompt_folder, GOOD_STEPS, other=GOOD_STEPS)
    assert error.kind == "duplicate-flow" and error.value == "main"
    assert "flow 'main' is also defined in" in str(error)


def test_a_step_of_another_flow_is_reachable_and_entry_steps_count(
    tmp_path: Path, prompt_folder: Path
) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          start:
            goto: {flow: other, step: deep}
          from_http:
            entry: true
            play: ok
        """,
        other="""
        flow: other
        steps:
          first:
            hangup: {}
          deep:
            play: ok
        """,
    )
    assert set(flows) == {"main", "other"}
    error = load_error(
        tmp_path / "again",
        prompt_folder,
        """
        flow: main
        steps:
          start:
            goto: {flow: other, step: deeper}
        """,
        other="flow: other\nsteps:\n  deep:\n    play: ok\n",
    )
    assert error.kind == "unknown-step" and "of flow 'other'" in str(error)


def test_yes_and_no_are_step_names_not_booleans(tmp_path: Path, prompt_folder: Path) -> None:
    flows = flows_from(
        tmp_path,
        prompt_folder,
        main="""
        flow: main
        steps:
          ask:
            menu: {prompt: menu, choices: {1: yes, 2: no}}
          yes:
            play: ok
          no:
            play: fail
        """,
    )
    menu = flows.flow("main").step("ask")
    assert isinstance(menu, Menu)
    assert menu.choice_map == {"1": Target(None, "yes"), "2": Target(None, "no")}


def test_prompt_folders_come_from_the_files_and_must_agree(
    tmp_path: Path, prompt_folder: Path
) -> None:
    text = f"flow: main\nprompts: {prompt_folder}\nsteps:\n  a:\n    play: greeting\n"
    path = write_flow(tmp_path, "main", text)
    assert load_flows(path).prompts.folder == prompt_folder.resolve()
    other = tmp_path / "other_prompts"
    other.mkdir()
    write_flow(tmp_path, "b", f"flow: b\nprompts: {other}\nsteps:\n  a:\n    hangup:\n")
    with pytest.raises(FlowError, match="flows loaded together share one prompt folder"):
        load_flows(tmp_path)
    write_flow(tmp_path, "b", "flow: b\nprompts: nowhere\nsteps:\n  a:\n    hangup:\n")
    with pytest.raises(FlowError, match=r"prompt folder .*nowhere does not exist"):
        load_flows(tmp_path)


def test_a_flow_set_cannot_be_changed(tmp_path: Path, prompt_folder: Path) -> None:
    flows = flows_from(tmp_path, prompt_folder, main=GOOD_STEPS)
    with pytest.raises(TypeError):
        flows.flows["x"] = flows.flow("main")  # type: ignore[index]
    with pytest.raises(TypeError):
        flows.flow("main").steps["x"] = flows.flow("main").step("sales")  # type: ignore[index]
    with pytest.raises(KeyError, match="no flow named 'nope' \\(loaded flows: main\\)"):
        flows.flow("nope")


def test_callworker_check_validates_flow_files(tmp_path: Path, prompt_folder: Path) -> None:
    from worker.cli import main as cli

    register()
    assert check_flow_file(EXAMPLE / "holiday.yaml").startswith(
        "flow 'holiday': 2 steps (1 play, 1 voicemail), prompts from"
    )
    assert "checked with 2 other flows of its folder" in check_flow_file(EXAMPLE / "holiday.yaml")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.yaml").write_text(
        textwrap.dedent(
            f"""\
            flow: main
            prompts: {prompt_folder}
            steps:
              welcome:
                play: greting
            """
        )
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["check", str(EXAMPLE / "main.yaml"), str(bad / "main.yaml")])
    assert result.exit_code == 1, result.output
    assert f"ok    {EXAMPLE / 'main.yaml'}: flow file, flow 'main': 13 steps" in result.output
    assert (
        f"error {bad / 'main.yaml'}:5: steps.welcome.play: no prompt named 'greting' in "
        f"{prompt_folder.resolve()} (did you mean 'greeting'?)"
    ) in result.output
