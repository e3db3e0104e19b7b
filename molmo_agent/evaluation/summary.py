"""Scores from the per-step records, and the report files (summary.json, accuracy.png, report.html)."""

from __future__ import annotations

import contextlib
import html
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ..actions import Action
from ..annotate import draw_action

MAX_FAILURES_SHOWN = 200


def _gt_type(record: dict) -> str:
    gt = record.get("gt_action") or {}
    return str(gt.get("action_type") or gt.get("type") or "unknown")


def _pred_type(record: dict) -> str:
    predicted = record.get("predicted")
    return str(predicted["type"]) if predicted else "unparsed"


def _episode_success(lines: list[dict]) -> bool:
    last = lines[-1]
    if last.get("success") is not None:
        return bool(last["success"])
    return all(line["correct"] for line in lines)


def summarize(records: list[dict], *, env_id: str, protocol: str | None, model_id: str) -> dict[str, Any]:
    """Step accuracy (overall and per ground-truth action type), type confusion, episode success."""
    per_type: dict[str, list[bool]] = defaultdict(list)
    confusion: dict[str, Counter] = defaultdict(Counter)
    episodes: dict[int, list[dict]] = defaultdict(list)
    for record in records:
        per_type[_gt_type(record)].append(bool(record["correct"]))
        confusion[_gt_type(record)][_pred_type(record)] += 1
        episodes[int(record["episode"])].append(record)
    steps = len(records)
    overheads = [r["step_ms"] - r["model_ms"] for r in records if "step_ms" in r]
    return {
        "env_id": env_id,
        "model": model_id,
        "protocol": protocol or next((r.get("protocol") for r in records if r.get("protocol")), None),
        "steps": steps,
        "step_accuracy": sum(r["correct"] for r in records) / steps if steps else 0.0,
        "per_type_accuracy": {t: sum(v) / len(v) for t, v in sorted(per_type.items())},
        "per_type_steps": {t: len(v) for t, v in sorted(per_type.items())},
        "confusion": {t: dict(c) for t, c in sorted(confusion.items())},
        "episodes": len(episodes),
        "episode_success_rate": (
            sum(_episode_success(lines) for lines in episodes.values()) / len(episodes) if episodes else 0.0
        ),
        "parse_errors": sum(1 for r in records if r.get("parse_error")),
        "call_errors": sum(1 for r in records if r.get("error")),
        "median_model_ms": statistics.median(r["model_ms"] for r in records) if records else 0.0,
        "median_env_ms": statistics.median(r["env_ms"] for r in records) if records else 0.0,
        "median_harness_overhead_ms": statistics.median(overheads) if overheads else 0.0,
    }


def write_report(summary: dict[str, Any], records: list[dict], out_dir: Path) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(summary).save(out_dir / "accuracy.png")
    failures = [r for r in records if not r["correct"]][:MAX_FAILURES_SHOWN]
    (out_dir / "failures").mkdir(exist_ok=True)
    rows = [_failure_row(record, out_dir) for record in failures]
    (out_dir / "report.html").write_text(_page(summary, rows))


def _plot(summary: dict[str, Any]) -> Image.Image:
    """Per-type step accuracy as horizontal bars (plain PIL: no plotting library needed)."""
    items = list(summary["per_type_accuracy"].items()) or [("none", 0.0)]
    width, row = 640, 28
    image = Image.new("RGB", (width, 60 + row * len(items)), "white")
    draw = ImageDraw.Draw(image)
    title = f"{summary['env_id']}: step accuracy {summary['step_accuracy']:.1%} ({summary['steps']} steps)"
    draw.text((10, 10), title, fill="black")
    for i, (name, accuracy) in enumerate(items):
        y = 40 + i * row
        count = summary["per_type_steps"].get(name, 0)
        draw.text((10, y + 6), f"{name} ({count})", fill="black")
        draw.rectangle((200, y + 4, 200 + int(380 * accuracy), y + row - 6), fill=(60, 120, 200))
        draw.text((200 + int(380 * accuracy) + 6, y + 6), f"{accuracy:.0%}", fill="black")
    return image


def _failure_row(record: dict, out_dir: Path) -> dict[str, str]:
    """The step's screenshot with the prediction drawn and the target box outlined."""
    source = out_dir / record["screenshot"]
    name = Path(record["screenshot"]).name
    if source.is_file():
        image = Image.open(source).convert("RGB")
        if record.get("predicted"):
            with contextlib.suppress(ValueError):  # a recorded action that no longer validates: no drawing
                image = draw_action(image, Action.from_dict(record["predicted"]))
        box = record.get("target_box")
        if box and len(box) == 4:
            ImageDraw.Draw(image).rectangle(tuple(float(v) for v in box), outline=(0, 200, 0), width=4)
        image.thumbnail((480, 480))
        image.save(out_dir / "failures" / name)
    return {
        "image": f"failures/{name}",
        "title": f"episode {record['episode']} step {record['step']}",
        "task": str(record.get("task", "")),
        "predicted": json.dumps(record.get("predicted")),
        "truth": json.dumps(record.get("gt_action")),
        "reason": str(record.get("error") or record.get("reason") or record.get("parse_error") or ""),
        "text": str(record.get("raw_text", ""))[:300],
    }


def _page(summary: dict[str, Any], rows: list[dict[str, str]]) -> str:
    e = html.escape
    types = sorted({t for c in summary["confusion"].values() for t in c} | set(summary["confusion"]))
    header = "".join(f"<th>{e(t)}</th>" for t in types)
    matrix = "".join(
        f"<tr><th>{e(gt)}</th>" + "".join(f"<td>{counts.get(t, '')}</td>" for t in types) + "</tr>"
        for gt, counts in summary["confusion"].items()
    )
    failures = "".join(
        f"<div class='f'><img src='{e(r['image'])}' alt='{e(r['title'])}'><div><h3>{e(r['title'])}</h3>"
        f"<p><b>task</b> {e(r['task'])}</p><p><b>predicted</b> <code>{e(r['predicted'])}</code></p>"
        f"<p><b>truth</b> <code>{e(r['truth'])}</code></p><p><b>why</b> {e(r['reason'])}</p>"
        f"<p><b>model text</b> <code>{e(r['text'])}</code></p></div></div>"
        for r in rows
    )
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>evaluation</title>
<style>body{{font-family:sans-serif;margin:20px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px}}
.f{{display:flex;gap:16px;border-top:1px solid #ddd;padding:8px 0}}
.f img{{max-width:480px}} code{{word-break:break-all}}</style></head><body>
<h1>{e(summary["env_id"])} — {e(str(summary["model"]))}</h1>
<p>protocol: {e(str(summary["protocol"]))} · steps: {summary["steps"]} · step accuracy:
{summary["step_accuracy"]:.1%} · episodes: {summary["episodes"]} · episode success:
{summary["episode_success_rate"]:.1%} · unparsed answers: {summary["parse_errors"]}</p>
<img src="accuracy.png" alt="per-type accuracy">
<h2>Action types (rows: truth, columns: predicted)</h2><table><tr><th></th>{header}</tr>{matrix}</table>
<h2>Failing steps ({len(rows)} shown)</h2>{failures}
</body></html>
"""
