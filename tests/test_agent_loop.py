"""The agent loop with the real tiny Molmo2 (answers scripted at the text boundary), non-desktop executors."""

from __future__ import annotations

import itertools
import json

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from molmo_agent.actions import Action, ActionType
from molmo_agent.agent import (
    ActionPolicy,
    AgentConfig,
    ConfirmingExecutor,
    DryRunExecutor,
    EnvExecutor,
    PointPolicy,
    parse_instruction,
    run_agent,
    split_goal,
)

SCREEN = (800, 600)


def answers(backend, *texts: str, then: str | None = None) -> None:
    """Answer the model calls in order; after the list, repeat ``then`` (or the last answer)."""
    sequence = itertools.chain(texts, itertools.repeat(then if then is not None else texts[-1]))
    backend.script = lambda request: next(sequence)


def changing_screens():
    """A new screen every observation, so the stuck detector never fires."""
    counter = itertools.count()
    return lambda: Image.new("RGB", SCREEN, ((next(counter) * 50) % 256, 80, 120))


def test_step_limit_stops_the_loop_and_dry_run_maps_percent_to_pixels(model, backend):
    answers(backend, "Click(25.0, 50.0)")
    executor = DryRunExecutor(changing_screens())
    result = run_agent("Open settings", ActionPolicy(model), executor, AgentConfig(max_steps=3))
    assert result.stop_reason == "step_limit"
    assert len(result.steps) == 3
    assert executor.actions == [Action(type="click", x=200.0, y=300.0)] * 3
    assert all(not step.outcome.executed for step in result.steps)
    assert result.steps[0].prompt == "high_level: Open settings"


def test_same_action_on_an_unchanged_screen_is_stuck(model, backend):
    answers(backend, "Click(10.0, 10.0)")
    screen = Image.new("RGB", SCREEN, "white")
    result = run_agent(
        "Open settings", ActionPolicy(model), DryRunExecutor(screen), AgentConfig(stuck_repeats=3)
    )
    assert result.stop_reason == "stuck"
    assert len(result.steps) == 3


def test_done_stops_and_model_garbage_is_recorded_not_raised(model, backend):
    answers(backend, "I think I should look around", "Scroll down", "Done")
    result = run_agent("Find the about page", ActionPolicy(model), DryRunExecutor(changing_screens()))
    assert result.stop_reason == "done"
    assert [s.action.type if s.action else None for s in result.steps] == [
        None,
        ActionType.SCROLL,
        ActionType.DONE,
    ]
    assert "I think I should look around" in result.steps[0].error
    assert result.steps[1].action.direction == "down"


def test_low_level_steps_go_into_the_prompt(model, backend):
    answers(backend, "Click(50.0, 50.0)", "Done")
    policy = ActionPolicy(model, steps=["Tap the gear icon"])
    result = run_agent("Open settings", policy, DryRunExecutor(changing_screens()))
    assert result.steps[0].prompt == "high_level: Open settings low_level: Tap the gear icon"
    assert result.steps[1].prompt == "high_level: Open settings"


def test_actions_outside_the_allowlist_are_refused(model, backend):
    answers(backend, "Type rm -rf /", "Done")
    executor = DryRunExecutor(changing_screens())
    config = AgentConfig(allowed_actions=frozenset({ActionType.CLICK, ActionType.SCROLL}))
    result = run_agent("Clean up", ActionPolicy(model), executor, config)
    assert executor.actions == []
    assert "not allowed" in result.steps[0].error
    assert result.stop_reason == "done"


def test_point_policy_grounds_each_instruction(model, backend):
    def by_target(request):
        return (
            '<points coords="1 1 250 100">Save</points>'
            if "Save" in request.prompt
            else '<points coords="1 1 500 900">search box</points>'
        )

    backend.script = by_target
    executor = DryRunExecutor(changing_screens())
    goal = "click the Save button then type hello world into the search box"
    result = run_agent(goal, PointPolicy(model), executor)
    assert result.stop_reason == "done"
    assert executor.actions == [
        Action(type="click", x=200.0, y=60.0),
        Action(type="type", x=400.0, y=540.0, text="hello world"),
    ]
    assert result.steps[0].prompt == "Point to the Save button."


def test_point_policy_drag_points_twice(model, backend):
    backend.script = lambda r: (
        '<points coords="1 1 100 100">file</points>'
        if "file" in r.prompt
        else '<points coords="1 1 900 900">x</points>'
    )
    executor = DryRunExecutor(changing_screens())
    run_agent("drag the file to the trash", PointPolicy(model), executor)
    assert executor.actions == [Action(type="drag", x=80.0, y=60.0, x2=720.0, y2=540.0)]


def test_point_policy_records_a_target_it_cannot_find(model, backend):
    answers(backend, "There are none.")
    result = run_agent("click the unicorn", PointPolicy(model), DryRunExecutor(changing_screens()))
    assert result.steps[0].action is None
    assert "could not find the target" in result.steps[0].error


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("Click the OK button.", ActionType.CLICK, "the OK button"),
        ("double-click the icon", ActionType.DOUBLE_CLICK, "the icon"),
        ("right click on the file", ActionType.RIGHT_CLICK, "the file"),
        ("long press the photo", ActionType.LONG_PRESS, "the photo"),
        ("the red button", ActionType.CLICK, "the red button"),
        ("Point to the red cube.", ActionType.CLICK, "the red cube"),
        ("locate the exit sign", ActionType.CLICK, "the exit sign"),
        ("scroll down a bit", ActionType.SCROLL, None),
        ("done", ActionType.DONE, None),
    ],
)
def test_instruction_parsing(text, kind, target):
    instruction = parse_instruction(text)
    assert (instruction.action_type, instruction.target) == (kind, target)


def test_goal_splitting():
    assert split_goal("click File; click Save then click OK") == ["click File", "click Save", "click OK"]


@pytest.mark.parametrize(("answer", "stop"), [("n", "step_limit"), ("q", "quit")])
def test_confirm_mode(model, backend, answer, stop):
    answers(backend, "Click(50.0, 50.0)")
    inner = DryRunExecutor(changing_screens())
    asked = []
    executor = ConfirmingExecutor(inner, ask=lambda action: asked.append(action) or answer)
    result = run_agent("Open settings", ActionPolicy(model), executor, AgentConfig(max_steps=2))
    assert result.stop_reason == stop
    assert inner.actions == []
    assert asked and all(a == Action(type="click", x=400.0, y=300.0) for a in asked)


class TargetEnv(gym.Env):
    """A one-button screen: reward 1 for a click inside the button; two steps per episode."""

    metadata = {"render_modes": ()}  # noqa: RUF012 - gymnasium's convention

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {"screenshot": gym.spaces.Box(0, 255, (SCREEN[1], SCREEN[0], 3), dtype=np.uint8)}
        )
        self.action_space = gym.spaces.Discrete(1)  # actions arrive as ma.Action objects
        self.button = (150, 50, 250, 70)

    def _obs(self):
        screen = np.full((SCREEN[1], SCREEN[0], 3), 255, np.uint8)
        x0, y0, x1, y1 = self.button
        screen[y0:y1, x0:x1] = (0, 0, 200)
        return {"screenshot": screen}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def step(self, action: Action):
        self.steps += 1
        x0, y0, x1, y1 = self.button
        hit = action.type is ActionType.CLICK and x0 <= action.x <= x1 and y0 <= action.y <= y1
        return self._obs(), float(hit), self.steps >= 2, False, {"hit": hit}


def test_env_executor_applies_actions_and_ends_with_the_episode(model, backend):
    answers(backend, "Click(25.0, 10.0)", "Click(90.0, 90.0)")
    executor = EnvExecutor(TargetEnv(), seed=0)
    result = run_agent("press the blue button", ActionPolicy(model), executor, AgentConfig(max_steps=10))
    assert result.stop_reason == "finished"
    assert [s.outcome.reward for s in result.steps] == [1.0, 0.0]
    assert executor.total_reward == 1.0


@pytest.mark.parametrize("policy_class", [ActionPolicy, PointPolicy])
def test_the_loop_runs_end_to_end_on_the_tiny_model(tiny_model, policy_class):
    """No scripted responder: whatever the random model says, the loop completes and records it."""
    screen = Image.new("RGB", (320, 240), (40, 90, 160))
    result = run_agent(
        "click the blue square", policy_class(tiny_model), DryRunExecutor(screen), AgentConfig(max_steps=2)
    )
    assert result.stop_reason in {"step_limit", "stuck", "done"}
    assert 1 <= len(result.steps) <= 2
    for step in result.steps:
        assert step.raw_text or step.error is not None or step.action is not None
        if step.prompt:
            assert step.model_ms > 0


def test_a_target_not_found_is_retried_before_moving_on(model, backend):
    answers(backend, "There are none.", '<points coords="1 1 500 500">Save</points>', "x")
    executor = DryRunExecutor(changing_screens())
    result = run_agent(
        "click Save; click Open", PointPolicy(model, steps=None), executor, AgentConfig(max_steps=3)
    )
    assert [s.prompt for s in result.steps[:2]] == ["Point to the Save.", "Point to the Save."]
    assert result.steps[0].error and result.steps[1].error is None
    assert result.steps[2].prompt == "Point to the Open."


def test_the_same_unusable_answer_on_an_unchanged_screen_is_stuck(model, backend):
    answers(backend, "no idea")
    screen = Image.new("RGB", SCREEN, "white")
    result = run_agent(
        "Open settings", ActionPolicy(model), DryRunExecutor(screen), AgentConfig(max_steps=10)
    )
    assert result.stop_reason == "stuck"
    assert len(result.steps) == 3


class BrokenScreen(DryRunExecutor):
    def observe(self):
        from molmo_agent.agent import ExecutionError

        raise ExecutionError("the screen grabber lost its display")


def test_a_screen_that_cannot_be_observed_is_recorded_and_stops_the_run(model):
    result = run_agent("Open settings", ActionPolicy(model), BrokenScreen(Image.new("RGB", (8, 8))))
    assert result.stop_reason == "error"
    assert "lost its display" in result.steps[0].error


def test_cli_gui_dry_runs_a_screenshot_and_writes_the_trajectory(tmp_path, capsys):
    from molmo_agent.cli import main

    record = tmp_path / "run"
    code = main(
        ["gui", "click the red mug", "--screenshot", "sample", "--max-steps", "2", "--record", str(record)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "stopped:" in out and str(record / "index.html") in out
    assert (record / "index.html").is_file() and (record / "steps.jsonl").is_file()
    summary = json.loads((record / "summary.json").read_text())
    assert summary["goal"] == "click the red mug"
    # a dry run: the screen never changes, so the run ends on done, the step limit or as stuck
    assert summary["stop_reason"] in {"done", "step_limit", "stuck"}
    assert summary["num_steps"] == 2
