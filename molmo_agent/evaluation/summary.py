"""Scores from the per-step records: per protocol, per subsplit, per action type, and each env's own
headline (SyntheticGui: the target against what the tap hit; TabletopPointing: the 3-D error).

Every summary names what produced it (model, env settings, seeds, protocol or "env reward") and what it
was scored against (``truth``), so a number never travels without its setup.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from typing import Any

from .steps import ENV_REWARD

SUBSPLITS = ("IDD", "app_unseen", "task_unseen", "category_unseen")
TRUTH = {
    "synthetic_gui": "the element the instruction names, read from SyntheticGui's own app state "
    "(a step is correct when its tap reaches the goal state)",
    "tabletop": "the named object's solid in 3-D (a step is correct when the deprojected point is within "
    "the env's hit margin, 2 cm by default)",
    "android_control": "the ground-truth action as the protocol's reference stores it (gt_answer)",
    "generic": "the env's info['correct'], else reward > 0",
}


def _rate(values: list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def _episode_success(lines: list[dict]) -> bool:
    last = lines[-1]
    if last.get("success") is not None:
        return bool(last["success"])
    return all(line["correct"] for line in lines)


def scores(records: list[dict]) -> dict[str, Any]:
    """Step accuracy overall, per subsplit and per ground-truth type; type confusion; episode success."""
    per_type: dict[str, list[bool]] = defaultdict(list)
    per_subsplit: dict[str, list[bool]] = defaultdict(list)
    confusion: dict[str, Counter] = defaultdict(Counter)
    episodes: dict[int, list[dict]] = defaultdict(list)
    for record in records:
        gt = str(record.get("gt_type") or "unknown")
        per_type[gt].append(bool(record["correct"]))
        confusion[gt][str(record.get("predicted_type") or "unparsed")] += 1
        if record.get("subsplit"):
            per_subsplit[str(record["subsplit"])].append(bool(record["correct"]))
        episodes[int(record["episode"])].append(record)
    order = sorted(per_subsplit, key=lambda s: (SUBSPLITS.index(s) if s in SUBSPLITS else 99, s))
    return {
        "steps": len(records),
        "step_accuracy": _rate([bool(r["correct"]) for r in records]),
        "per_subsplit": {
            s: {"steps": len(per_subsplit[s]), "accuracy": _rate(per_subsplit[s])} for s in order
        },
        "per_type_accuracy": {t: _rate(v) for t, v in sorted(per_type.items())},
        "per_type_steps": {t: len(v) for t, v in sorted(per_type.items())},
        "confusion": {t: dict(c) for t, c in sorted(confusion.items())},
        "episodes": len(episodes),
        "episode_success_rate": _rate([_episode_success(lines) for lines in episodes.values()]),
        "parse_errors": sum(1 for r in records if r.get("parse_error")),
        "call_errors": sum(1 for r in records if r.get("error")),
    }


def miss_kinds(records: list[dict]) -> dict[str, int]:
    """Where SyntheticGui's missed taps went: wrong colour, wrong shape, blank near/far, another element."""
    kinds: Counter[str] = Counter()
    for record in records:
        if record["correct"]:
            continue
        hit, target, point = record.get("hit_element"), record.get("target_element") or {}, _point(record)
        if point is None:
            kinds["no action"] += 1
        elif hit is None:
            x0, y0, x1, y1 = target["box"]
            gap = math.hypot(max(x0 - point[0], 0, point[0] - x1), max(y0 - point[1], 0, point[1] - y1))
            kinds["blank, near the target" if gap <= x1 - x0 else "blank, far from the target"] += 1
        elif hit.get("kind") == target.get("kind") == "icon":
            if hit.get("color") == target.get("color"):
                kinds["icon of the same colour, other shape"] += 1
            elif hit.get("shape") == target.get("shape"):
                kinds["icon of the same shape, other colour"] += 1
            else:
                kinds["icon of other colour and shape"] += 1
        else:
            kinds[f"other element ({str(hit.get('kind')).replace('_', ' ')})"] += 1
    return dict(kinds)


def _point(record: dict) -> tuple[float, float] | None:
    predicted = record.get("predicted") or {}
    if predicted.get("x") is None or predicted.get("y") is None:
        return None
    return float(predicted["x"]), float(predicted["y"])


def synthetic_gui_scores(records: list[dict]) -> dict[str, Any]:
    """How often the tap landed on the step's target element, and where the misses went."""
    on_target = [
        bool(r.get("hit_element")) and r["hit_element"].get("id") == (r.get("target_element") or {}).get("id")
        for r in records
    ]
    return {"target_hit_rate": _rate(on_target), "miss_kinds": miss_kinds(records)}


def tabletop_scores(records: list[dict]) -> dict[str, Any]:
    """Hit rate and the median 3-D error; a step without a usable point counts as an infinite error."""
    errors = [math.inf if r.get("error_m") is None else float(r["error_m"]) for r in records]
    median = statistics.median(errors) if errors else math.inf
    median_m = median if math.isfinite(median) else None
    return {
        "hit_rate": _rate([bool(r.get("hit")) for r in records]),
        "median_error_m": median_m,
        "median_error_cm": round(median_m * 100, 2) if median_m is not None else None,
        "points_without_depth_or_answer": sum(1 for e in errors if not math.isfinite(e)),
    }


def settings_text(config: dict[str, Any], seeds: list[int]) -> str:
    """The settings that produced the numbers, one line (printed by the CLI, shown in the report)."""
    args = " ".join(
        f"{key}={_short(value)}" for key, value in config["env_args"].items() if key != "render_mode"
    )
    parts = [f"{config['env_id']} {args}".strip(), f"max_episode_steps={config['max_episode_steps']}"]
    if seeds:
        first, last = min(seeds), max(seeds)
        shown = f"{first}..{last}" if len(seeds) == last - first + 1 else ",".join(map(str, sorted(seeds)))
        parts.append(f"seeds {shown} ({len(seeds)} episodes)")
    parts.append(f"policy {config['policy']} (max_new_tokens {config['max_new_tokens']})")
    view = config.get("view") or {}
    if view.get("scale", 1.0) != 1.0 or view.get("bgr"):
        parts.append(f"view scale={view.get('scale')} bgr={view.get('bgr')}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_short(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "none"
    return str(value)


def summarize(records: list[dict], manifest: dict[str, Any]) -> dict[str, Any]:
    """The summary.json of a run: scores per protocol, the env's headline, and what produced them."""
    config = manifest["config"]
    stated = sorted({str(r["protocol"]) for r in records if r.get("protocol")})
    scoring = config.get("protocol") or (stated[0] if len(stated) == 1 else ENV_REWARD)
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[str(record.get("protocol") or scoring)].append(record)
    kind = next((r["env_kind"] for r in records if r.get("env_kind")), "generic")
    seeds = sorted({int(r["seed"]) for r in records if r.get("seed") is not None})
    overheads = [r["step_ms"] - r["model_ms"] for r in records if "step_ms" in r]
    summary: dict[str, Any] = {
        "env_id": config["env_id"],
        "model": config["model"]["id"],
        "model_identity": config["model"],
        "protocol": scoring,
        "truth": TRUTH.get(kind, TRUTH["generic"]),
        "env_kind": kind,
        "settings": settings_text(config, seeds),
        "env_args": config["env_args"],
        "max_episode_steps": config["max_episode_steps"],
        "policy": config["policy"],
        "max_new_tokens": config["max_new_tokens"],
        "seed": config["seed"],
        **scores(records),
        "protocols": {name: scores(lines) for name, lines in sorted(groups.items())},
        "median_model_ms": statistics.median(r["model_ms"] for r in records) if records else 0.0,
        "median_env_ms": statistics.median(r["env_ms"] for r in records) if records else 0.0,
        "median_harness_overhead_ms": statistics.median(overheads) if overheads else 0.0,
    }
    if kind == "synthetic_gui":
        summary["synthetic_gui"] = synthetic_gui_scores(records)
    if kind == "tabletop":
        summary["tabletop"] = tabletop_scores(records)
    summary["headline"] = headline(summary)
    return summary


def headline(summary: dict[str, Any]) -> str:
    """One sentence with the number and what it is (the CLI's final line starts with it)."""
    text = (
        f"{summary['env_id']} ({summary['protocol']}): step accuracy {summary['step_accuracy']:.1%} over "
        f"{summary['steps']} steps, episode success {summary['episode_success_rate']:.1%} over "
        f"{summary['episodes']} episodes"
    )
    if "tabletop" in summary:
        table = summary["tabletop"]
        error = f"{table['median_error_cm']:.2f} cm" if table["median_error_cm"] is not None else "n/a"
        text += f"; median 3-D error {error}, {table['hit_rate']:.1%} hits"
    if summary["parse_errors"]:
        text += f"; {summary['parse_errors']} unparsed answers (wrong steps)"
    return text
