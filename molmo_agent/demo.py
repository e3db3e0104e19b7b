"""``molmo-agent demo``: the default model driving the synthetic environments, offline, with a report.

SyntheticGui episodes run through the real agent loop (``run_agent`` with ``PointPolicy`` and an
``EnvExecutor``), each recorded by ``TrajectoryRecorder`` into its own page; TabletopPointing scenes go
through the same pointing path and are lifted to 3-D with the scene's depth and intrinsics. One
``index.html`` links everything, ``summary.json`` holds the numbers. Seeds are held-out evaluation seeds
(training never draws them), so the success rates are honest.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Any

from .agent.executors.env import EnvExecutor
from .agent.loop import AgentConfig, run_agent
from .agent.policies import PointPolicy
from .agent.record import TrajectoryRecorder
from .annotate import draw_points
from .geometry import pixels_to_normalized
from .images import load_image
from .model import MolmoModel, load_model
from .points import Point
from .training.evaluate import evaluate_tabletop

GUI_SCREEN = (540, 960)


def _gui_episode(model: MolmoModel, seed: int, folder: Path) -> dict[str, Any]:
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    env = SyntheticGuiEnv(screen_size=GUI_SCREEN, task="icon", difficulty=0, random_size=False)
    executor = EnvExecutor(env, seed=seed)
    goal = executor.info["instruction"]
    with TrajectoryRecorder(folder, goal) as recorder:
        result = run_agent(goal, PointPolicy(model), executor, AgentConfig(max_steps=3), callbacks=[recorder])
        recorder.close(result)
    success = bool(executor.info.get("success"))
    return {"seed": seed, "goal": goal, "success": success, "steps": len(result.steps), "page": folder.name}


def _tabletop_gallery(model: MolmoModel, seeds: list[int], folder: Path) -> tuple[dict[str, Any], list[dict]]:
    from molmo_envs.tabletop import TabletopPointingEnv

    result = evaluate_tabletop(model, seeds)
    folder.mkdir(parents=True, exist_ok=True)
    env = TabletopPointingEnv()
    for record in result.records:
        obs, _ = env.reset(seed=record["seed"])
        points = []
        if record["point"] is not None:
            x, y = record["point"]
            x_norm, y_norm = pixels_to_normalized(x, y, env.image_size)
            points = [Point(x=x, y=y, x_norm=x_norm, y_norm=y_norm, label="")]
        name = f"tabletop_{record['seed']:04d}.png"
        draw_points(load_image(obs["image"]), points).save(folder / name)
        record["image"] = f"{folder.name}/{name}"
    return result.summary(), result.records


def run_demo(
    model_name: str | None = None,
    out_dir: Path = Path("molmo-agent-demo"),
    gui_episodes: int = 20,
    tabletop_scenes: int = 20,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the demo; returns the summary (also written to ``out_dir/summary.json``) with printable lines."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(model_name, device=device)
    episodes = [
        _gui_episode(model, seed + i, out_dir / f"gui_{seed + i:04d}") for i in range(max(gui_episodes, 0))
    ]
    tabletop, scenes = (
        _tabletop_gallery(model, list(range(seed, seed + tabletop_scenes)), out_dir / "tabletop")
        if tabletop_scenes > 0
        else ({}, [])
    )
    gui_rate = sum(e["success"] for e in episodes) / max(len(episodes), 1)
    summary = {
        "model": model.info.model_id,
        "synthetic_gui": {"episodes": len(episodes), "success_rate": round(gui_rate, 4), "runs": episodes},
        "tabletop": tabletop,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "index.html").write_text(_page(summary, scenes), encoding="utf-8")
    lines = [f"model: {model.info.model_id} ({model.info.num_parameters:,} parameters, {model.info.device})"]
    if episodes:
        lines.append(
            f"SyntheticGui (tap the icon named by colour and shape): {gui_rate:.0%} success "
            f"over {len(episodes)} held-out episodes"
        )
    if tabletop:
        median = tabletop["median_error_m"]
        shown = f"{median * 100:.1f} cm" if median is not None else "n/a (most points missed)"
        lines.append(
            f"TabletopPointing: {tabletop['success_rate']:.0%} within 2 cm, median 3-D error {shown} "
            f"over {tabletop['episodes']} scenes"
        )
    lines.append(f"report: {out_dir / 'index.html'} ({summary['seconds']} s)")
    return summary | {"lines": lines}


def _page(summary: dict[str, Any], scenes: list[dict]) -> str:
    esc = html.escape
    gui = summary["synthetic_gui"]
    rows = "".join(
        f"<tr><td>{run['seed']}</td><td>{esc(run['goal'])}</td>"
        f"<td class={'ok' if run['success'] else 'bad'}>{'success' if run['success'] else 'miss'}</td>"
        f"<td><a href='{esc(run['page'])}/index.html'>trajectory</a></td></tr>"
        for run in gui["runs"]
    )
    tiles = "".join(
        f"<figure><img src='{esc(s['image'])}' alt='scene {s['seed']}'><figcaption>{esc(s['instruction'])}"
        f"<br>{_error_text(s.get('error_m'))}</figcaption></figure>"
        for s in scenes
    )
    table = summary.get("tabletop") or {}
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'">
<title>molmo-agent demo</title><style>
body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px}} .ok{{color:#161}} .bad{{color:#a11}}
figure{{display:inline-block;margin:4px;font-size:12px;width:330px}} img{{max-width:320px}}
</style></head><body>
<h1>molmo-agent demo: {esc(str(summary["model"]))}</h1>
<h2>SyntheticGui: {gui["success_rate"]:.0%} of {gui["episodes"]} episodes</h2>
<table><tr><th>seed</th><th>instruction</th><th>result</th><th></th></tr>{rows}</table>
<h2>TabletopPointing: {table.get("success_rate", 0):.0%} within 2 cm, median error
{_error_text(table.get("median_error_m"))}</h2>
{tiles}
</body></html>
"""


def _error_text(error_m: float | None) -> str:
    if error_m is None or not math.isfinite(error_m):
        return "no point"
    return f"{error_m * 100:.1f} cm"


__all__ = ["run_demo"]
