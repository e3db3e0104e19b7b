"""Molmo-format training turns for an environment's current step.

The environments say what is where (the target element and its centre, the oracle's point or action, the
goal and step instruction); this module says it in Molmo's words, the prompt and the answer a model is
trained on. Keeping the wording here keeps the envs free of prompts and supervision (DESIGN.md, Layers).
"""

from __future__ import annotations

from typing import Any

from ..parsing import format_action_molmo, format_point_molmo1, format_points_molmo2
from ..prompts import act_prompt, point_prompt

FAMILIES = ("molmo2", "molmo1")


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return family


def point_answer(x_norm: float, y_norm: float, label: str, family: str) -> str:
    """One point as the family writes it: Molmo2 ``<points coords=...>``, v1 ``<point x=.. y=..>`` percent."""
    if check_family(family) == "molmo2":
        return format_points_molmo2([[(x_norm, y_norm)]], label)
    return format_point_molmo1([(x_norm, y_norm)], label)


def synthetic_gui_turns(env: Any, family: str = "molmo2") -> dict[str, str]:
    """Training text for a ``SyntheticGuiEnv``'s next step.

    ``phrase`` (the element acted on, e.g. "the blue Settings button"), ``point_prompt`` / ``point_answer``
    (pointing at that element's centre in the family's format), ``step`` (the low-level instruction),
    ``act_prompt`` (goal and step, as Molmo was fine-tuned on) and ``action_answer`` (the oracle's action
    as Molmo's action string).
    """
    env = getattr(env, "unwrapped", env)
    goal, step = env.next_step()
    width, height = env.screen_size
    x, y = step.target.center
    return {
        "phrase": step.target.phrase,
        "point_prompt": point_prompt(step.target.phrase, check_family(family)),
        "point_answer": point_answer(x / width, y / height, step.target.phrase, family),
        "step": step.instruction,
        "act_prompt": act_prompt(goal, step.instruction),
        "action_answer": format_action_molmo(env.oracle_action(), env.screen_size),
    }


def tabletop_turn(env: Any, family: str = "molmo2") -> tuple[str, str]:
    """``(prompt, answer)`` for a ``TabletopPointingEnv``: point to the target at the oracle's pixel."""
    point = getattr(env, "unwrapped", env).oracle_point()
    prompt = point_prompt(f"the {point.label}", check_family(family))
    return prompt, point_answer(point.x_norm, point.y_norm, point.label, family)


def android_control_turn(env: Any) -> tuple[str, str]:
    """``(prompt, answer)`` for an ``AndroidControlEnv``'s current step: Molmo's ``high_level: ...
    low_level: ...`` prompt (goal only in high-level mode) and the recorded action as Molmo's action
    string, in percent of the observed screen."""
    env = getattr(env, "unwrapped", env)
    return act_prompt(env.goal, env.instruction or None), format_action_molmo(
        env.gt_action(), env.screen_size
    )
