"""A workflow plans, shows, asks once, then applies the steps it planned (no services: steps that record)."""

from __future__ import annotations

import io

import pytest

from ops import workflows
from ops.config import Environment
from ops.errors import OperationFailed, UserError
from ops.invocation import CommandLine

LINE = CommandLine("demo")


class Recorder:
    """Steps whose plans and applies write what happened, in order, into one list."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def step(self, name: str, *, fails: bool = False) -> workflows.Step:
        def plan() -> str:
            self.events.append(f"plan {name}")
            return f"would {name}"

        def apply() -> str:
            self.events.append(f"apply {name}")
            if fails:
                raise OperationFailed(f"{name} broke")
            return f"did {name}"

        return workflows.Step(name, apply=apply, plan=plan)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def typed(monkeypatch, capsys):
    """A person at a terminal: what they type is set per test; what was shown is recorded as an event."""

    def answer(events: list[str], name: str) -> None:
        monkeypatch.setattr("sys.stdin", Terminal())

        def prompt(question: str) -> str:
            events.append("shown: " + capsys.readouterr().out.strip())
            events.append("asked")
            return name

        monkeypatch.setattr("builtins.input", prompt)

    return answer


def test_a_workflow_plan_lists_each_steps_plan_in_order_and_applies_nothing():
    recorder = Recorder()
    steps = [recorder.step("first"), recorder.step("second")]
    plan = workflows.plan_steps("demo", steps, command=LINE, resume_at=None)
    assert [(step.name, shown.status, shown.detail) for step, shown in plan.step_plans()] == [
        ("first", "done", "would first"),
        ("second", "done", "would second"),
    ]
    assert [step for step, _ in plan.step_plans()] == steps
    assert recorder.events == ["plan first", "plan second"]
    text = plan.text()
    assert text.startswith("plan (demo --dry-run):") and text.index("would first") < text.index("would second")


def test_applying_a_plan_applies_its_own_steps_in_order():
    recorder, other = Recorder(), Recorder()
    plan = workflows.plan_steps("demo", [recorder.step("first"), recorder.step("second")], command=LINE, resume_at=None)
    other.step("unplanned")  # a step built but not in the plan is never applied
    result = workflows.apply_steps(plan, command=LINE, resume_at=None)
    assert recorder.events == ["plan first", "plan second", "apply first", "apply second"]
    assert other.events == []
    assert [(s.step, s.status, s.detail) for s in result.steps] == [
        ("first", "done", "did first"),
        ("second", "done", "did second"),
    ]


def test_a_protected_target_is_shown_the_plan_asked_once_then_the_planned_steps_apply(typed):
    recorder = Recorder()
    steps = [recorder.step("first"), recorder.step("second")]
    prod, also = Environment("prod", protected=True), Environment("prod-eu", protected=True)
    typed(recorder.events, "prod")
    with pytest.raises(UserError, match="not confirmed"):  # the second environment gets the same answer
        workflows.run_workflow(
            "demo", steps, writes=[prod, also], yes=False, dry_run=False, action="go", command=LINE, resume_at=None
        )
    shown = recorder.events[2]
    assert recorder.events[:2] == ["plan first", "plan second"] and recorder.events[3] == "asked"
    assert "plan (demo --dry-run):" in shown and "would first" in shown and "would second" in shown
    assert recorder.events[4:] == ["shown: ", "asked"], "asked for each, the plan shown once, nothing applied"

    recorder.events.clear()
    typed(recorder.events, "prod")
    result = workflows.run_workflow(
        "demo", steps, writes=[prod, prod], yes=False, dry_run=False, action="go", command=LINE, resume_at=None
    )
    assert [e for e in recorder.events if not e.startswith("shown")] == [
        "plan first",
        "plan second",
        "asked",
        "apply first",
        "apply second",
    ]
    assert result.footer() == "demo: 2 of 2 step(s) done"


def test_a_plan_that_fails_is_shown_and_nothing_is_asked_or_applied(typed):
    recorder = Recorder()
    steps = [recorder.step("first"), recorder.step("second")]
    steps[0].plan = lambda: (_ for _ in ()).throw(OperationFailed("cannot read"))
    typed(recorder.events, "prod")
    with pytest.raises(UserError, match="the plan stopped at a failed step"):
        workflows.run_workflow(
            "demo",
            steps,
            writes=[Environment("prod", protected=True)],
            yes=False,
            dry_run=False,
            action="go",
            command=LINE,
            resume_at=None,
        )
    assert recorder.events == []


def test_without_a_question_nothing_is_planned_and_a_dry_run_applies_nothing():
    recorder = Recorder()
    steps = [recorder.step("first"), recorder.step("second", fails=True)]
    open_env = Environment("preprod")
    applied = workflows.run_workflow(
        "demo", steps, writes=[open_env], yes=False, dry_run=False, action="go", command=LINE, resume_at=None
    )
    assert recorder.events == ["apply first", "apply second"]
    assert applied.resume == "inv demo --resume-at second" and applied.exit_code == 1
    recorder.events.clear()
    dry = workflows.run_workflow(
        "demo", steps, writes=[open_env], yes=False, dry_run=True, action="go", command=LINE, resume_at="second"
    )
    assert recorder.events == ["plan second"]
    assert [s.status for s in dry.steps] == ["skipped", "done"]
