"""``molmo-agent demo``: the default model on held-out SyntheticGui and TabletopPointing episodes, offline.

Both run through the evaluation harness with the headline suites' settings (``evaluation.suites``), so
the demo's numbers are ``molmo-agent eval``'s numbers on the same seeds: each suite gets a full eval folder
(``synthetic_gui/``, ``tabletop/``: steps, report with failures), and ``index.html`` shows every episode with
the model's point drawn, plus the ``eval`` command that reproduces it. Seeds are held-out evaluation seeds
(training never draws them), so the success rates are honest.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

from PIL import Image

from .actions import Action
from .annotate import draw_action
from .evaluation.suites import SUITES, score_suite
from .model import MolmoModel, load_model

THUMBNAIL = (320, 320)


def _episodes(records: list[dict], out_dir: Path, folder: str) -> list[dict[str, Any]]:
    """One row per episode (its first step), with the screenshot and the model's action drawn."""
    rows = []
    for record in records:
        if record["step"] != 0:
            continue
        image = f"{folder}/demo_{record['seed']:04d}.png"
        shot = out_dir / folder / record["screenshot"]
        if shot.is_file():
            frame = Image.open(shot).convert("RGB")
            if record.get("predicted"):
                frame = draw_action(frame, Action.from_dict(record["predicted"]))
            frame.thumbnail(THUMBNAIL)
            frame.save(out_dir / image)
        rows.append(
            {
                "seed": record["seed"],
                "kind": record.get("env_kind"),
                "goal": record["task"],
                "target": record.get("target"),
                "success": bool(record["correct"]),
                "hit": record.get("hit"),
                "error_m": record.get("error_m"),
                "image": image,
            }
        )
    return rows


def _suite(model: MolmoModel, name: str, seed: int, count: int, out_dir: Path) -> dict[str, Any]:
    summary, records = score_suite(model, name, range(seed, seed + count), out_dir=out_dir / name, force=True)
    result = {
        "episodes": summary["episodes"],
        "success_rate": round(summary["step_accuracy"], 4),
        "settings": summary["settings"],
        "command": SUITES[name].command(count, seed) + f" --out {out_dir / name}",
        "report": f"{name}/report.html",
        "runs": _episodes(records, out_dir, name),
    }
    if "tabletop" in summary:
        result["median_error_m"] = summary["tabletop"]["median_error_m"]
    return result


def run_demo(
    model_name: str | None = None,
    out_dir: Path = Path("molmo-agent-demo"),
    gui_episodes: int = 20,
    tabletop_scenes: int = 20,
    device: str | None = None,
    seed: int = 0,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Run the demo; returns the summary (also written to ``out_dir/summary.json``) with printable lines."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(model_name, device=device, quantize=quantize)
    gui = _suite(model, "synthetic_gui", seed, gui_episodes, out_dir) if gui_episodes > 0 else {}
    tabletop = _suite(model, "tabletop", seed, tabletop_scenes, out_dir) if tabletop_scenes > 0 else {}
    summary = {
        "model": model.info.model_id,
        "synthetic_gui": gui,
        "tabletop": tabletop,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "index.html").write_text(_page(summary), encoding="utf-8")
    return summary | {"lines": _lines(model, summary, out_dir)}


def _lines(model: MolmoModel, summary: dict[str, Any], out_dir: Path) -> list[str]:
    lines = [f"model: {model.info.model_id} ({model.info.num_parameters:,} parameters, {model.info.device})"]
    gui, tabletop = summary["synthetic_gui"], summary["tabletop"]
    if gui:
        lines.append(
            f"SyntheticGui (tap the icon named by colour and shape, first tap): {gui['success_rate']:.0%} "
            f"success over {gui['episodes']} held-out episodes [{gui['settings']}]"
        )
        lines.append(f"  same number: {gui['command']}")
    if tabletop:
        lines.append(
            f"TabletopPointing: {tabletop['success_rate']:.0%} within 2 cm, median 3-D error "
            f"{_error_text(tabletop['median_error_m'])} over {tabletop['episodes']} scenes"
        )
        lines.append(f"  same number: {tabletop['command']}")
    lines.append(f"report: {out_dir / 'index.html'} ({summary['seconds']} s)")
    return lines


def _tiles(runs: list[dict]) -> str:
    esc = html.escape
    return "".join(
        f"<figure><img src='{esc(run['image'])}' alt='seed {run['seed']}'><figcaption>seed {run['seed']}: "
        f"{esc(run['goal'])}<br><span class={'ok' if run['success'] else 'bad'}>"
        f"{'success' if run['success'] else 'miss'}</span> {esc(_outcome(run))}</figcaption></figure>"
        for run in runs
    )


def _outcome(run: dict) -> str:
    if run["kind"] == "tabletop":
        return f"3-D error {_error_text(run.get('error_m'))}"
    return f"hit: {run.get('hit') or 'nothing'}"


def _section(title: str, suite: dict[str, Any]) -> str:
    if not suite:
        return ""
    esc = html.escape
    return (
        f"<h2>{esc(title)}</h2><p>settings: <code>{esc(suite['settings'])}</code><br>the same number: "
        f"<code>{esc(suite['command'])}</code> · <a href='{esc(suite['report'])}'>evaluation report</a></p>"
        + _tiles(suite["runs"])
    )


def _page(summary: dict[str, Any]) -> str:
    esc = html.escape
    gui, table = summary["synthetic_gui"], summary["tabletop"]
    gui_title = f"SyntheticGui: {gui.get('success_rate', 0):.0%} of {gui.get('episodes', 0)} episodes"
    table_title = (
        f"TabletopPointing: {table.get('success_rate', 0):.0%} within 2 cm, median error "
        f"{_error_text(table.get('median_error_m'))}"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'">
<title>molmo-agent demo</title><style>
body{{font-family:sans-serif;margin:2em}} .ok{{color:#161}} .bad{{color:#a11}}
figure{{display:inline-block;margin:4px;font-size:12px;width:330px;vertical-align:top}} img{{max-width:320px}}
</style></head><body>
<h1>molmo-agent demo: {esc(str(summary["model"]))}</h1>
{_section(gui_title, gui)}
{_section(table_title, table)}
</body></html>
"""


def _error_text(error_m: float | None) -> str:
    if error_m is None:
        return "no point"
    return f"{error_m * 100:.1f} cm"


__all__ = ["run_demo"]
