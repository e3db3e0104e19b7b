"""What one env step says about the model's answer, read into the fields of a step record.

Each env states its truth in its own ``info``: AndroidControl scores the answer itself (``correct``,
``gt_answer``, ``predicted_type``, ``subsplit``), SyntheticGui says which element the step should act on and
which one the tap hit, TabletopPointing gives the 3-D error of the point. This module is the one place that
knows those keys, so the harness, the summary and the report never guess. A step whose answer could not be
read is wrong whatever the env says.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..actions import Action

UNPARSED = "unparsed"
ENV_REWARD = "env reward"


def jsonable(value: Any) -> Any:
    """JSON-safe copy of env values (arrays, numpy scalars, Actions); non-finite floats become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Action):
        return value.to_dict()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def env_kind(before: dict[str, Any], after: dict[str, Any]) -> str:
    """``synthetic_gui``, ``tabletop``, ``android_control`` or ``generic``, from the keys the env reports."""
    if "hit_element" in after and "next_target" in before:
        return "synthetic_gui"
    if "error_m" in after:
        return "tabletop"
    if "gt_answer" in after or "subsplit" in after:
        return "android_control"
    return "generic"


def _predicted_type(after: dict[str, Any], predicted: dict | None, unparsed: bool) -> str:
    if after.get("predicted_type"):
        return str(after["predicted_type"])
    if unparsed or not predicted:
        return UNPARSED
    return str(predicted.get("type") or UNPARSED)


def _gt_type(before: dict[str, Any], after: dict[str, Any], kind: str) -> str:
    gt = after.get("gt_action") or {}
    if isinstance(gt, dict) and (gt.get("action_type") or gt.get("type")):
        return str(gt.get("action_type") or gt.get("type"))
    if kind == "synthetic_gui":
        return f"{before.get('task', 'task')} task"
    if kind == "tabletop":
        return "point"
    return "unknown"


def _correct(reward: float, after: dict[str, Any], kind: str, unparsed: bool) -> bool:
    if unparsed:
        return False  # an unreadable answer is a wrong step everywhere, whatever the env made of it
    if "correct" in after:
        return bool(after["correct"])
    if kind == "tabletop":
        return bool(after.get("hit"))  # its reward is partial credit for near misses: not a correct step
    return float(reward) > 0


def _kind_fields(before: dict[str, Any], after: dict[str, Any], kind: str) -> dict[str, Any]:
    """The env's own truth for the step: what it should have hit and what it did hit."""
    if kind == "synthetic_gui":
        element = before.get("next_target") or {}
        return {
            "target": element.get("phrase"),
            "target_element": jsonable(element),
            "target_box": jsonable(element.get("box")),
            "goal_target": (before.get("target") or {}).get("phrase"),
            "hit": after.get("hit"),
            "hit_element": jsonable(after.get("hit_element")),
            "env_error": after.get("error"),
        }
    if kind == "tabletop":
        return {
            "target": after.get("label"),
            "target_box": jsonable(after.get("target_box")),
            "error_m": jsonable(float(after.get("error_m", math.inf))),
            "hit": bool(after.get("hit")),
        }
    return {"target_box": jsonable(after.get("target_box"))}


def step_fields(
    before: dict[str, Any], after: dict[str, Any], reward: float, predicted: dict | None, unparsed: bool
) -> dict[str, Any]:
    """The env's verdict on one step as record fields (``before``: the info the step was taken on)."""
    kind = env_kind(before, after)
    return {
        "env_kind": kind,
        "reward": float(reward),
        "correct": _correct(reward, after, kind, unparsed),
        "predicted_type": _predicted_type(after, predicted, unparsed),
        "gt_type": _gt_type(before, after, kind),
        "gt_action": jsonable(after.get("gt_action")),
        "gt_answer": jsonable(after.get("gt_answer")),
        "scored_answer": jsonable(after.get("answer")),
        "reason": jsonable(after.get("reason", "")),
        "protocol": jsonable(after.get("protocol")),
        "subsplit": jsonable(after.get("subsplit")),
        "success": jsonable(after.get("success")),
        **_kind_fields(before, after, kind),
    }
