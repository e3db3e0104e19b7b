"""Held-out pointing success through the full agent path, for training and the default model's numbers.

A thin reading of the evaluation harness (``molmo_agent.evaluation``): the same episodes, policy, views
and scoring as ``molmo-agent eval`` with the suite's documented arguments (``evaluation.suites``), so the
trainer's curve, ``benchmarks/eval_default_model.py`` and ``eval`` report one number. Only the first action
counts: a click task is a success if that one tap lands on the named element. The seeds are the env's own
reset seeds; training draws none of them (``examples.TRAIN_SEED_BASE``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..evaluation.suites import score_suite
from ..evaluation.summary import miss_kinds as _miss_kinds
from ..evaluation.views import PLAIN, View
from ..model import MolmoModel

SUITES = ("synthetic_gui", "tabletop")
__all__ = ["SUITES", "SuiteResult", "View", "evaluate", "evaluate_synthetic_gui", "evaluate_tabletop"]


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


def _record(step: dict[str, Any]) -> dict[str, Any]:
    """A harness step record in this module's shape (seed, answer, point in env pixels, verdict)."""
    predicted = step.get("predicted") or {}
    point = [predicted["x"], predicted["y"]] if predicted.get("x") is not None else None
    record = {
        "seed": step["seed"],
        "instruction": step["task"],
        "answer": step["raw_text"] if not step.get("error") else f"error: {step['error']}",
        "point": point,
        "target": step.get("target"),
        "success": bool(step["correct"]),
    }
    if step.get("env_kind") == "tabletop":
        return record | {"error_m": step.get("error_m")}
    return record | {
        "target_element": step.get("target_element"),
        "hit": step.get("hit"),
        "hit_element": step.get("hit_element"),
    }


def _result(
    name: str, model: MolmoModel, seeds: Sequence[int], view: View, overrides: dict[str, Any] | None = None
) -> SuiteResult:
    summary, steps = score_suite(model, name, seeds, view, env_overrides=overrides)
    records = [_record(step) for step in steps]
    median = summary["tabletop"]["median_error_m"] if name == "tabletop" else None
    successes = sum(r["success"] for r in records)
    return SuiteResult(name, view.name, len(records), successes, median, summary["parse_errors"], records)


def evaluate_synthetic_gui(
    model: MolmoModel, seeds: Sequence[int], view: View = PLAIN, **env_overrides: Any
) -> SuiteResult:
    """First-tap success on the headline SyntheticGui setting (``suites.SUITES["synthetic_gui"]``);
    ``env_overrides`` (e.g. ``difficulty=1``) change env arguments for harder reference settings."""
    return _result("synthetic_gui", model, seeds, view, env_overrides)


def evaluate_tabletop(model: MolmoModel, seeds: Sequence[int], view: View = PLAIN) -> SuiteResult:
    """Hits (within 2 cm of the object) and the median 3-D error of the deprojected point."""
    return _result("tabletop", model, seeds, view)


def miss_kinds(records: Sequence[dict[str, Any]]) -> Counter[str]:
    """Where a SyntheticGui suite's missed taps went (see ``evaluation.summary.miss_kinds``)."""
    steps = [
        {
            "correct": r["success"],
            "hit_element": r["hit_element"],
            "target_element": r["target_element"],
            "predicted": {"x": r["point"][0], "y": r["point"][1]} if r["point"] is not None else None,
        }
        for r in records
    ]
    return Counter(_miss_kinds(steps))


def evaluate(model: MolmoModel, suite: str, seeds: Sequence[int], view: View = PLAIN) -> SuiteResult:
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    return _result(suite, model, seeds, view)
