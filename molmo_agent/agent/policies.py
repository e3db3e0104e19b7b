"""Policies turn an observation and a goal into one action through a Molmo model.

- :class:`ActionPolicy`: Molmo's AndroidControl format (``high_level: {goal} [low_level: {step}]``), parsed
  into the shared action schema. Needs an action-tuned checkpoint.
- :class:`PointPolicy`: the instruction names the element ("click the Save button", "type hello into the
  search box", "drag the file to the trash"); the model points at it and the point becomes the action's
  target. Works with any pointing-capable Molmo, no action fine-tuning needed.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from .. import prompts
from ..actions import Action, ActionType
from ..model import MolmoModel
from .records import Decision, Observation


class Policy(ABC):
    """Chooses the next action. ``history`` holds the actions carried out so far: a policy that follows
    a list of instructions moves to the next one only when the previous one's action went through, so a
    target that was not found, or an action refused or declined, is tried again."""

    @abstractmethod
    def decide(
        self, observation: Observation, goal: str, step_index: int, history: Sequence[Action]
    ) -> Decision:
        """The next action; a Decision without action (and a reason) when the model's answer is unusable."""


class ActionPolicy(Policy):
    """Molmo's action prediction. ``steps`` are optional low-level instructions, one per action."""

    def __init__(self, model: MolmoModel, steps: Sequence[str] | None = None) -> None:
        self.model = model
        self.steps = list(steps or [])

    def decide(
        self, observation: Observation, goal: str, step_index: int, history: Sequence[Action]
    ) -> Decision:
        done = len(history)
        step = self.steps[done] if done < len(self.steps) else None
        result = self.model.act_detailed(observation.screenshot, goal, step=step, history=history)
        t = result.timings
        return Decision(
            action=result.action,
            prompt=prompts.act_prompt(goal, step),
            raw_text=result.text,
            reason=result.reason,
            preprocess_ms=t.decode_ms + t.preprocess_ms,
            model_ms=t.model_ms,
            parse_ms=t.parse_ms,
        )


@dataclass(frozen=True)
class Instruction:
    """One parsed instruction: what to do, to which element, with which text or second element."""

    action_type: ActionType
    target: str | None = None
    text: str | None = None
    destination: str | None = None
    direction: str | None = None


# (pattern, action type); first match wins. Groups: target, text, destination, direction by name.
_INSTRUCTION_FORMS: tuple[tuple[re.Pattern[str], ActionType], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"^(?:done|finish(?:ed)?|stop)\.?$", ActionType.DONE),
        (r"^scroll (?P<direction>up|down|left|right)\b.*$", ActionType.SCROLL),
        (r"^type (?P<text>.+?) (?:into|in|on) (?P<target>.+)$", ActionType.TYPE),
        (r"^drag (?P<target>.+?) (?:to|onto|into) (?P<destination>.+)$", ActionType.DRAG),
        (r"^double[- ]?click (?:on )?(?P<target>.+)$", ActionType.DOUBLE_CLICK),
        (r"^right[- ]?click (?:on )?(?P<target>.+)$", ActionType.RIGHT_CLICK),
        (r"^(?:long[- ]?press|press and hold) (?:on )?(?P<target>.+)$", ActionType.LONG_PRESS),
        (r"^(?:click|tap|press|select|open|choose) (?:on )?(?P<target>.+)$", ActionType.CLICK),
        # pointing requests ("Point to the red cube.", as TabletopPointing asks) act on what they name
        (r"^(?:point (?:to|at)|find|locate) (?P<target>.+)$", ActionType.CLICK),
    )
)


def parse_instruction(text: str) -> Instruction:
    """'click the Save button' -> click on "the Save button"; text without a known verb is a click target."""
    cleaned = " ".join(text.split()).rstrip(".")
    for pattern, kind in _INSTRUCTION_FORMS:
        match = pattern.match(cleaned)
        if match:
            groups = match.groupdict()
            return Instruction(
                kind,
                groups.get("target"),
                groups.get("text"),
                groups.get("destination"),
                (groups.get("direction") or "").lower() or None,
            )
    return Instruction(ActionType.CLICK, cleaned)


def split_goal(goal: str) -> list[str]:
    """A goal of several instructions: 'click File; click Save' or 'click File then click Save'."""
    parts = re.split(r"\s*;\s*|\s+then\s+", goal.strip(), flags=re.IGNORECASE)
    return [p for p in parts if p]


class PointPolicy(Policy):
    """Grounds each instruction by pointing; after the last instruction it answers ``done``."""

    def __init__(self, model: MolmoModel, steps: Sequence[str] | None = None) -> None:
        self.model = model
        self.steps = list(steps) if steps else None

    def decide(
        self, observation: Observation, goal: str, step_index: int, history: Sequence[Action]
    ) -> Decision:
        instructions = self.steps or split_goal(goal)
        done = len(history)
        if done >= len(instructions):
            return Decision(
                Action(type=ActionType.DONE), prompt="", raw_text="", reason="all instructions done"
            )
        instruction = parse_instruction(instructions[done])
        if instruction.target is None:  # scroll, done: nothing to point at
            return Decision(_untargeted(instruction), prompt="", raw_text="")
        first = self.model.point_detailed(observation.screenshot, instruction.target)
        texts, reasons = [first.text], [first.reason]
        totals = [first.timings]
        second = None
        if instruction.destination is not None:
            second = self.model.point_detailed(observation.screenshot, instruction.destination)
            texts.append(second.text)
            reasons.append(second.reason)
            totals.append(second.timings)
        prompt = prompts.point_prompt(instruction.target, self.model.family)
        decision_timings = {
            "preprocess_ms": sum(t.decode_ms + t.preprocess_ms for t in totals),
            "model_ms": sum(t.model_ms for t in totals),
            "parse_ms": sum(t.parse_ms for t in totals),
        }
        if not first.points or (second is not None and not second.points):
            reason = "; ".join(r for r in reasons if r) or "the model pointed at nothing"
            return Decision(
                None, prompt, " | ".join(texts), f"could not find the target: {reason}", **decision_timings
            )
        start = first.points[0]
        end = second.points[0] if second is not None else None
        action = _targeted(instruction, start.x, start.y, end)
        return Decision(action, prompt, " | ".join(texts), None, **decision_timings)


def _untargeted(instruction: Instruction) -> Action:
    if instruction.action_type is ActionType.SCROLL:
        return Action(type=ActionType.SCROLL, direction=instruction.direction)
    return Action(type=instruction.action_type)


def _targeted(instruction: Instruction, x: float, y: float, end) -> Action:
    """The point becomes the action's target; a ``type`` with a position clicks there first."""
    kind = instruction.action_type
    if kind is ActionType.DRAG:
        return Action(type=kind, x=x, y=y, x2=end.x, y2=end.y)
    if kind is ActionType.TYPE:
        return Action(type=kind, x=x, y=y, text=instruction.text)
    return Action(type=kind, x=x, y=y)
