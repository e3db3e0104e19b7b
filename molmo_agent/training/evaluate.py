"""Held-out pointing success through the full agent path.

Each episode goes env observation -> (optional view change: rescale, BGR array) -> ``PointPolicy`` (prompt,
model, the one parser) -> action in the view's pixels -> ``geometry.ResizeTransform`` back to the env's
pixels -> ``env.step`` -> reward. Only the first action counts: a click task is a success if that one tap
lands on the named element. The seeds are the env's own reset seeds; training draws none of them
(``examples.TRAIN_SEED_BASE``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..actions import Action
from ..agent.policies import PointPolicy
from ..agent.records import Observation
from ..errors import MolmoAgentError
from ..geometry import ResizeTransform
from ..images import load_image
from ..model import MolmoModel

SUITES = ("synthetic_gui", "tabletop")


@dataclass(frozen=True)
class View:
    """How the agent is shown a frame: rescaled by ``scale`` and/or handed over as a BGR array."""

    scale: float = 1.0
    bgr: bool = False

    @property
    def name(self) -> str:
        parts = [] if self.scale == 1.0 else [f"x{self.scale:g}"]
        return "+".join(parts + (["bgr"] if self.bgr else [])) or "plain"

    def present(self, frame: np.ndarray) -> tuple[Observation, ResizeTransform]:
        """The observation the agent sees and the transform from the env's pixels to the view's."""
        import cv2

        height, width = frame.shape[:2]
        view = frame
        if self.scale != 1.0:
            size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
            view = cv2.resize(
                frame, size, interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
            )
        transform = ResizeTransform.resize((width, height), (view.shape[1], view.shape[0]))
        image = load_image(np.ascontiguousarray(view[..., ::-1]), bgr=True) if self.bgr else load_image(view)
        return Observation(image), transform


@dataclass
class SuiteResult:
    """Success of one suite over its seeds (``median_error_m``: tabletop's 3-D error, else None)."""

    suite: str
    view: str
    episodes: int
    successes: int
    median_error_m: float | None
    unparsed: int
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.episodes, 1)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "records"}
        return out | {"success_rate": round(self.success_rate, 4)}


def _env_pixels(action: Action, transform: ResizeTransform) -> Action:
    """The action's points mapped from the view back to the env's screenshot pixels."""
    data = action.to_dict()
    for xs, ys in (("x", "y"), ("x2", "y2")):
        if data.get(xs) is not None and data.get(ys) is not None:
            data[xs], data[ys] = transform.to_original(data[xs], data[ys])
    return Action.from_dict(data)


def _decide(model: MolmoModel, frame: np.ndarray, instruction: str, view: View) -> tuple[Action | None, str]:
    observation, transform = view.present(frame)
    try:
        decision = PointPolicy(model).decide(observation, instruction, 0, [])
    except MolmoAgentError as exc:
        return None, f"error: {exc}"
    if decision.action is None:
        return None, decision.raw_text
    return _env_pixels(decision.action, transform), decision.raw_text


def evaluate_synthetic_gui(
    model: MolmoModel,
    seeds: Sequence[int],
    view: View = View(),
    *,
    screen_size: tuple[int, int] = (540, 960),
    task: str = "icon",
    difficulty: int | None = 0,
    random_size: bool = False,
) -> SuiteResult:
    """First-tap success on SyntheticGui single-step tasks (``icon``: named by colour and shape).

    The default setting is the headline one: a 540x960 phone screen filled by the app, difficulty 0 (3-4
    icons among buttons, fields and list items, colours from the full palette)."""
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    env = SyntheticGuiEnv(screen_size=screen_size, task=task, difficulty=difficulty, random_size=random_size)
    successes, unparsed, records = 0, 0, []
    for seed in seeds:
        obs, info = env.reset(seed=int(seed))
        action, text = _decide(model, obs["screenshot"], obs["instruction"], view)
        reward, hit, hit_element = 0.0, None, None
        if action is None:
            unparsed += 1
        else:
            _, reward, _, _, step_info = env.step(action)
            hit, hit_element = step_info["hit"], step_info["hit_element"]
        successes += reward > 0
        records.append(
            {
                "seed": int(seed),
                "instruction": obs["instruction"],
                "answer": text,
                "point": [action.x, action.y] if action is not None else None,
                "target": info["target"]["phrase"],
                "target_element": info["target"],
                "hit": hit,
                "hit_element": hit_element,
                "success": bool(reward > 0),
            }
        )
    return SuiteResult("synthetic_gui", view.name, len(seeds), successes, None, unparsed, records)


def miss_kinds(records: Sequence[dict[str, Any]]) -> Counter[str]:
    """Where a SyntheticGui suite's missed taps went, by kind: the next thing to train for.

    An icon miss says which attribute the model got wrong (colour, shape or both); a tap on no element
    is "near" when it lies within one target width of the target's box (a precision miss), else "far"."""
    kinds: Counter[str] = Counter()
    for record in records:
        if record["success"]:
            continue
        hit, target = record["hit_element"], record["target_element"]
        if record["point"] is None:
            kinds["no action"] += 1
        elif hit is None:
            x0, y0, x1, y1 = target["box"]
            x, y = record["point"]
            gap = math.hypot(max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1))
            kinds["blank, near the target" if gap <= x1 - x0 else "blank, far from the target"] += 1
        elif hit["kind"] == target["kind"] == "icon":
            if hit["color"] == target["color"]:
                kinds["icon of the same colour, other shape"] += 1
            elif hit["shape"] == target["shape"]:
                kinds["icon of the same shape, other colour"] += 1
            else:
                kinds["icon of other colour and shape"] += 1
        else:
            kinds[f"other element ({str(hit['kind']).replace('_', ' ')})"] += 1
    return kinds


def evaluate_tabletop(
    model: MolmoModel, seeds: Sequence[int], view: View = View(), *, image_size: tuple[int, int] = (320, 240)
) -> SuiteResult:
    """Hits (within 2 cm of the object) and the median 3-D error of the deprojected point."""
    from molmo_envs.tabletop import TabletopPointingEnv

    env = TabletopPointingEnv(image_size=image_size)
    errors, successes, unparsed, records = [], 0, 0, []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        action, text = _decide(model, obs["image"], obs["instruction"], view)
        if action is None:
            unparsed += 1
            error, hit = math.inf, False
        else:
            _, _, _, _, step_info = env.step(action)
            error, hit = float(step_info["error_m"]), bool(step_info["hit"])
        errors.append(error)
        successes += hit
        records.append(
            {
                "seed": int(seed),
                "instruction": obs["instruction"],
                "answer": text,
                "point": [action.x, action.y] if action is not None else None,
                "error_m": error if math.isfinite(error) else None,
                "success": hit,
            }
        )
    median = float(np.median(errors)) if errors else None
    median = median if median is not None and math.isfinite(median) else None
    return SuiteResult("tabletop", view.name, len(seeds), successes, median, unparsed, records)


def evaluate(model: MolmoModel, suite: str, seeds: Sequence[int], view: View = View()) -> SuiteResult:
    if suite == "synthetic_gui":
        return evaluate_synthetic_gui(model, seeds, view)
    if suite == "tabletop":
        return evaluate_tabletop(model, seeds, view)
    raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
