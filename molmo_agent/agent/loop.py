"""The agent loop: observe -> decide (prompt, model, parse) -> validate -> execute -> record.

It stops at ``done``, the step limit, the wall-clock limit (checked between steps, so a slow model call
can overrun it by one step), when the same choice repeats on an unchanged screen too often (stuck), when
an environment's episode ends, when the supervising person quits, or when the screen cannot be observed.
Errors caused by the model's answer or by the executor are recorded on the step and the loop goes on;
anything else is a bug and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..actions import Action, ActionType
from ..errors import MolmoAgentError
from .executors.base import ExecutionError, Executor, StopRun
from .policies import Policy
from .records import RunResult, StepRecord, screens_match, signature

StepCallback = Callable[[StepRecord], None]


@dataclass(frozen=True)
class AgentConfig:
    """Bounds of a run, validated up front."""

    max_steps: int = 20
    max_seconds: float = 600.0
    stuck_repeats: int = 3
    """Stop when the same action is chosen this many times in a row on an unchanged screen."""
    allowed_actions: frozenset[ActionType] | None = None
    """Only these action types may be executed (None: all); others are recorded as refused."""

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_seconds <= 0 or self.stuck_repeats < 2:
            raise ValueError("max_steps >= 1, max_seconds > 0 and stuck_repeats >= 2 are required")
        if self.allowed_actions is not None:
            object.__setattr__(
                self, "allowed_actions", frozenset(ActionType(a) for a in self.allowed_actions)
            )


def run_agent(
    goal: str,
    policy: Policy,
    executor: Executor,
    config: AgentConfig | None = None,
    callbacks: Sequence[StepCallback] = (),
) -> RunResult:
    """Run until a stop condition; every step is passed to ``callbacks`` (e.g. a trajectory recorder)."""
    config = config or AgentConfig()
    started = time.monotonic()
    steps: list[StepRecord] = []
    history: list[Action] = []
    repeats = 0
    stop_reason = "step_limit"
    for index in range(config.max_steps):
        if time.monotonic() - started > config.max_seconds:
            stop_reason = "time_limit"
            break
        step, stop = _one_step(index, goal, policy, executor, config, history)
        previous = steps[-1] if steps else None
        repeats = repeats + 1 if _same_on_same_screen(previous, step) else 1
        steps.append(step)
        for callback in callbacks:
            callback(step)
        if stop:
            stop_reason = stop
            break
        if repeats >= config.stuck_repeats:
            stop_reason = "stuck"
            break
    return RunResult(goal=goal, stop_reason=stop_reason, steps=steps)


def _one_step(
    index: int, goal: str, policy: Policy, executor: Executor, config: AgentConfig, history: list[Action]
) -> tuple[StepRecord, str | None]:
    """One observe-decide-execute cycle; returns the record and a stop reason (or None to go on)."""
    try:
        observation = executor.observe()
    except MolmoAgentError as exc:  # no screen to act on: record why and stop
        return StepRecord(index=index, error=f"could not observe the screen: {exc}"), "error"
    thumbnail = observation.thumbnail()
    step = StepRecord(
        index=index,
        screenshot=observation.screenshot,
        capture_ms=observation.capture_ms,
        screen_signature=signature(thumbnail),
        screen_thumbnail=thumbnail,
    )
    decision = policy.decide(observation, goal, index, history)
    step.prompt, step.raw_text, step.action = decision.prompt, decision.raw_text, decision.action
    step.preprocess_ms, step.model_ms, step.parse_ms = (
        decision.preprocess_ms,
        decision.model_ms,
        decision.parse_ms,
    )
    action = decision.action
    if action is None:
        step.error = decision.reason or "the model's answer was not an action"
        return step, None
    if action.type is ActionType.DONE:
        return step, "done"
    if config.allowed_actions is not None and action.type not in config.allowed_actions:
        allowed = ", ".join(sorted(a.value for a in config.allowed_actions))
        step.error = f"action type {action.type.value!r} is not allowed (allowed: {allowed})"
        return step, None
    started = time.perf_counter()
    try:
        step.outcome = executor.execute(action)
    except StopRun as exc:
        step.error = str(exc)
        return step, "quit"
    except (ExecutionError, MolmoAgentError) as exc:
        step.error = f"could not execute: {exc}"
        return step, None
    finally:
        step.execute_ms = (time.perf_counter() - started) * 1000
    history.append(action)  # carried out (or recorded by a dry run): the policy moves on
    return step, "finished" if step.outcome.finished else None


def _same_on_same_screen(previous: StepRecord | None, step: StepRecord) -> bool:
    """The same choice (an action, or the same unusable answer) on an unchanged screen."""
    return (
        previous is not None
        and _choice(previous) == _choice(step)
        and screens_match(previous.screen_thumbnail, step.screen_thumbnail)
    )


def _choice(step: StepRecord) -> tuple:
    return step.action, step.error if step.action is None else None
