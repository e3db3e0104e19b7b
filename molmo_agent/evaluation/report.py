"""The report files of a run: summary.json, accuracy.png (readable at a glance) and report.html.

The page says what produced the numbers (model, env settings, seeds, protocol or "env reward") and what
they were scored against, then the scores per protocol, subsplit and action type, the type confusion, and
the failing steps with the prediction and the target drawn.
"""

from __future__ import annotations

import contextlib
import html
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..actions import Action
from ..annotate import draw_action

MAX_FAILURES_SHOWN = 200
FONT_SIZE = 22
ROW = 40
LABEL_WIDTH = 330
BAR_WIDTH = 560
BAR_COLOUR = (60, 120, 200)


def write_report(summary: dict[str, Any], records: list[dict], out_dir: Path) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(summary).save(out_dir / "accuracy.png")
    failures = [r for r in records if not r["correct"]][:MAX_FAILURES_SHOWN]
    (out_dir / "failures").mkdir(exist_ok=True)
    rows = [_failure_row(record, out_dir) for record in failures]
    (out_dir / "report.html").write_text(_page(summary, rows), encoding="utf-8")


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _panels(summary: dict[str, Any]) -> list[tuple[str, list[tuple[str, float, int]]]]:
    overall = [("all steps", summary["step_accuracy"], summary["steps"])]
    overall.append(("episodes", summary["episode_success_rate"], summary["episodes"]))
    if "tabletop" in summary:
        overall.append(("hits (3-D)", summary["tabletop"]["hit_rate"], summary["steps"]))
    panels = [("overall", overall)]
    if summary["per_subsplit"]:
        rows = [(name, s["accuracy"], s["steps"]) for name, s in summary["per_subsplit"].items()]
        panels.append(("per subsplit", rows))
    rows = [(t, acc, summary["per_type_steps"].get(t, 0)) for t, acc in summary["per_type_accuracy"].items()]
    panels.append(("per action type (truth)", rows or [("none", 0.0, 0)]))
    return panels


def plot(summary: dict[str, Any]) -> Image.Image:
    """Step accuracy as wide horizontal bars: overall, per subsplit, per type (plain PIL)."""
    panels = _panels(summary)
    height = 110 + sum(50 + ROW * len(rows) for _, rows in panels)
    image = Image.new("RGB", (LABEL_WIDTH + BAR_WIDTH + 140, height), "white")
    draw = ImageDraw.Draw(image)
    title, small = _font(FONT_SIZE + 4), _font(FONT_SIZE)
    draw.text((16, 14), f"{summary['env_id']}: {summary['protocol']}", fill="black", font=title)
    draw.text((16, 52), f"model {summary['model']}", fill=(80, 80, 80), font=small)
    y = 100
    for name, rows in panels:
        draw.text((16, y), name, fill="black", font=title)
        y += 44
        for label, accuracy, count in rows:
            draw.text((28, y + 6), f"{label} ({count})", fill="black", font=small)
            end = LABEL_WIDTH + int(BAR_WIDTH * accuracy)
            frame = (LABEL_WIDTH, y + 4, LABEL_WIDTH + BAR_WIDTH, y + ROW - 4)
            draw.rectangle(frame, outline=(200, 200, 200))
            draw.rectangle((LABEL_WIDTH, y + 4, max(end, LABEL_WIDTH + 1), y + ROW - 4), fill=BAR_COLOUR)
            draw.text((LABEL_WIDTH + BAR_WIDTH + 10, y + 6), f"{accuracy:.1%}", fill="black", font=small)
            y += ROW
        y += 6
    return image


def _failure_row(record: dict, out_dir: Path) -> dict[str, str]:
    """The step's screenshot with the prediction drawn and the target box outlined."""
    shot = record.get("screenshot")
    name = Path(shot).name if shot else f"ep{record['episode']:04d}_step{record['step']:03d}.png"
    source = out_dir / shot if shot else None
    if source is not None and source.is_file():
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
        "title": f"episode {record['episode']} (seed {record.get('seed')}) step {record['step']}"
        + (f" · {record['subsplit']}" if record.get("subsplit") else ""),
        "task": str(record.get("task", "")),
        "predicted": json.dumps(record.get("predicted")),
        "predicted_type": str(record.get("predicted_type", "")),
        "truth": _truth(record),
        "outcome": _outcome(record),
        "reason": str(record.get("error") or record.get("reason") or record.get("parse_error") or ""),
        "text": str(record.get("raw_text", ""))[:300],
    }


def _truth(record: dict) -> str:
    """What the step should have done, as the env states it."""
    if record.get("gt_answer"):
        return f"{record['gt_answer']} ({json.dumps(record.get('gt_action'))})"
    if record.get("target") is not None:
        box = record.get("target_box")
        return f"{record['target']} (box {box})" if box else str(record["target"])
    return json.dumps(record.get("gt_action"))


def _outcome(record: dict) -> str:
    """What the step did: the element hit (SyntheticGui), the 3-D error (Tabletop)."""
    if record.get("env_kind") == "synthetic_gui":
        return f"hit: {record.get('hit') or 'nothing'}"
    if record.get("env_kind") == "tabletop":
        error = record.get("error_m")
        return "3-D error: " + (f"{error * 100:.2f} cm" if error is not None else "no point (infinite)")
    return ""


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _protocol_section(name: str, scores: dict[str, Any]) -> str:
    e = html.escape
    subsplits = _table(
        [(s, str(v["steps"]), f"{v['accuracy']:.1%}") for s, v in scores["per_subsplit"].items()],
        ("subsplit", "steps", "step accuracy"),
    )
    types = _table(
        [(t, str(scores["per_type_steps"][t]), f"{a:.1%}") for t, a in scores["per_type_accuracy"].items()],
        ("type (truth)", "steps", "step accuracy"),
    )
    predicted = sorted({t for c in scores["confusion"].values() for t in c})
    matrix = _table(
        [(gt, *(str(c.get(t, "")) for t in predicted)) for gt, c in scores["confusion"].items()],
        ("truth \\ predicted", *predicted),
    )
    return (
        f"<h2>Scored by: {e(name)}</h2><p>step accuracy {scores['step_accuracy']:.1%} over "
        f"{scores['steps']} steps · episode success {scores['episode_success_rate']:.1%} over "
        f"{scores['episodes']} episodes · unparsed answers {scores['parse_errors']} · failed model calls "
        f"{scores['call_errors']}</p>"
        + (f"<h3>Per subsplit</h3>{subsplits}" if scores["per_subsplit"] else "")
        + f"<h3>Per action type</h3>{types}<h3>Action types (rows: truth, columns: predicted)</h3>{matrix}"
    )


def _corrupt_section(summary: dict[str, Any]) -> str:
    corrupt = summary.get("corrupt_records") or {}
    if not corrupt.get("count"):
        return ""
    rows = [(r["path"], str(r["offset"]), r["reason"]) for r in corrupt["records"]]
    return (
        f"<h2>Corrupt dataset records skipped: {corrupt['count']}</h2>"
        "<p>Their episodes are not in the numbers above.</p>" + _table(rows, ("shard", "offset", "why"))
    )


def _env_section(summary: dict[str, Any]) -> str:
    if "tabletop" in summary:
        t = summary["tabletop"]
        error = f"{t['median_error_cm']:.2f} cm" if t["median_error_cm"] is not None else "n/a"
        hits = f"{t['hit_rate']:.1%}"
        return f"<h2>TabletopPointing</h2><p>median 3-D error <b>{error}</b> · hits <b>{hits}</b></p>"
    if "synthetic_gui" in summary:
        s = summary["synthetic_gui"]
        misses = _table([(k, str(v)) for k, v in s["miss_kinds"].items()], ("where the misses went", "steps"))
        return (
            f"<h2>SyntheticGui</h2><p>taps on the step's target element: <b>{s['target_hit_rate']:.1%}</b>"
            f"</p>{misses}"
        )
    return ""


def _page(summary: dict[str, Any], rows: list[dict[str, str]]) -> str:
    e = html.escape
    failures = "".join(
        f"<div class='f'><img src='{e(r['image'])}' alt='{e(r['title'])}'><div><h3>{e(r['title'])}</h3>"
        f"<p><b>task</b> {e(r['task'])}</p><p><b>truth</b> <code>{e(r['truth'])}</code></p>"
        f"<p><b>predicted</b> ({e(r['predicted_type'])}) <code>{e(r['predicted'])}</code></p>"
        + (f"<p><b>outcome</b> {e(r['outcome'])}</p>" if r["outcome"] else "")
        + f"<p><b>why</b> {e(r['reason'])}</p>"
        + f"<p><b>model text</b> <code>{e(r['text'])}</code></p></div></div>"
        for r in rows
    )
    protocols = "".join(_protocol_section(name, s) for name, s in summary["protocols"].items())
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>evaluation</title>
<style>body{{font-family:sans-serif;margin:20px}} table{{border-collapse:collapse;margin:6px 0}}
td,th{{border:1px solid #ccc;padding:3px 8px}}
.f{{display:flex;gap:16px;border-top:1px solid #ddd;padding:8px 0}}
.f img{{max-width:480px}} code{{word-break:break-all}}</style></head><body>
<h1>{e(summary["env_id"])} — {e(str(summary["model"]))}</h1>
<p><b>{e(summary["headline"])}</b></p>
<p>settings: <code>{e(summary["settings"])}</code></p>
<p>scored by: {e(summary["protocol"])} · truth: {e(summary["truth"])}</p>
{_env_section(summary)}{_corrupt_section(summary)}
<img src="accuracy.png" alt="step accuracy overall, per subsplit and per type" style="max-width:100%">
{protocols}
<h2>Failing steps ({len(rows)} shown)</h2>{failures}
</body></html>
"""
