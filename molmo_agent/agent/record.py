"""The trajectory recorder: every step of a run on disk, and one page a person can step through.

A folder per run holds ``steps.jsonl`` (one JSON object per step, written as the step happens, so a crash
keeps what was done), ``step_0000.png`` (the screenshot with the action drawn on it), ``summary.json`` and
``index.html``: a single self-contained page (images as data URIs, inline CSS and JS, a content security
policy that forbids any network access) that can be mailed or attached to a bug report.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..annotate import draw_action
from .records import RunResult, StepRecord

logger = logging.getLogger(__name__)

TIMING_STAGES = ("capture", "preprocess", "model", "parse", "execute")
"""The stages of a step, in the order they happen (keys of ``StepRecord.to_dict()["timings_ms"]``)."""


class TrajectoryRecorder:
    """Writes a run into ``folder``; pass it to ``run_agent(..., callbacks=[recorder])``.

    Example::

        with TrajectoryRecorder("runs/save", goal) as recorder:
            result = run_agent(goal, policy, executor, callbacks=[recorder])
            recorder.close(result)  # the page then shows why the run stopped

    Args:
        folder: Created if missing; files of an earlier run there are overwritten.
        goal: Shown on the page until :meth:`close` is given the run's result.
        keep_raw_screenshots: Also save each screenshot without drawing (``step_0000_raw.png``), e.g. to
            build a dataset from the run.
    """

    def __init__(
        self, folder: str | os.PathLike, goal: str = "", *, keep_raw_screenshots: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.goal = goal
        self.keep_raw_screenshots = keep_raw_screenshots
        self.folder.mkdir(parents=True, exist_ok=True)
        self.steps_path = self.folder / "steps.jsonl"
        self.steps_path.write_text("", encoding="utf-8")
        self.entries: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.closed = False

    def __call__(self, step: StepRecord) -> None:
        """Save the step's images and append its JSON line."""
        entry = step.to_dict()
        entry["screenshot"] = entry["raw_screenshot"] = None
        if step.screenshot is not None:
            name = f"step_{step.index:04d}"
            shown = step.screenshot if step.action is None else draw_action(step.screenshot, step.action)
            shown.convert("RGB").save(self.folder / f"{name}.png")
            entry["screenshot"] = f"{name}.png"
            if self.keep_raw_screenshots:
                step.screenshot.save(self.folder / f"{name}_raw.png")
                entry["raw_screenshot"] = f"{name}_raw.png"
        with self.steps_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.entries.append(entry)

    def close(self, result: RunResult | None = None) -> None:
        """Write ``summary.json`` and ``index.html``; may be called again (e.g. once more with the result)."""
        if result is not None:
            self.goal = result.goal or self.goal
            self.stop_reason = result.stop_reason
            result.record_dir = str(self.folder)
        summary = summarize(self.goal, self.stop_reason, self.entries)
        (self.folder / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        page = render_page(summary, self.entries, self._image_uri)
        (self.folder / "index.html").write_text(page, encoding="utf-8")
        self.closed = True
        logger.info("trajectory of %d steps written to %s", len(self.entries), self.folder)

    def __enter__(self) -> TrajectoryRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.stop_reason = f"error: {exc_type.__name__}: {exc}"
            self.close()
        elif not self.closed:
            self.close()

    def _image_uri(self, name: str | None) -> str | None:
        if name is None:
            return None
        data = base64.b64encode((self.folder / name).read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"


def summarize(goal: str, stop_reason: str | None, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The run at a glance; a stage's median counts only the steps where that stage ran.

    (A step whose answer was unusable never executes: counting its zero would halve the execute median.)
    """
    medians = {}
    for stage in TIMING_STAGES:
        values = [e["timings_ms"][stage] for e in entries if e["timings_ms"][stage] > 0]
        medians[stage] = round(statistics.median(values), 3) if values else None
    totals = [t for t in (sum(e["timings_ms"].values()) for e in entries) if t > 0]
    medians["total"] = round(statistics.median(totals), 3) if totals else None
    return {
        "goal": goal,
        "stop_reason": stop_reason,
        "num_steps": len(entries),
        "num_errors": sum(1 for e in entries if e["error"]),
        "num_executed": sum(1 for e in entries if e["outcome"] and e["outcome"]["executed"]),
        "median_timings_ms": medians,
    }


# --- the page -------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f4f6;color:#222}
header{background:#222;color:#eee;padding:10px 16px}
header h1{font-size:16px;margin:0 0 4px}
header .meta span{margin-right:18px}
nav{display:flex;gap:8px;align-items:center;padding:8px 16px;background:#ddd;position:sticky;top:0}
nav button{font:inherit;padding:3px 12px}
#strip{display:flex;gap:3px;flex-wrap:wrap}
#strip a{display:inline-block;min-width:22px;text-align:center;padding:1px 4px;border-radius:3px;
 background:#fff;color:#222;text-decoration:none;border:1px solid #aaa}
#strip a.err{background:#fdd;border-color:#c33}
#strip a.current{outline:2px solid #06c}
main{padding:12px 16px}
.step{display:none;gap:16px;flex-wrap:wrap}
.step.current,body:not([data-ready]) .step{display:flex}
.step figure{margin:0;flex:1 1 480px;max-width:100%}
.step img{max-width:100%;border:1px solid #888}
.step .facts{flex:1 1 380px;min-width:0}
.facts h2{font-size:15px;margin:0 0 8px}
.facts h3{font-size:13px;margin:12px 0 3px;color:#555}
pre{background:#fff;border:1px solid #ccc;padding:6px;margin:0;white-space:pre-wrap;word-break:break-word}
.error{background:#fee;border-color:#c33;color:#900}
.none{color:#888;font-style:italic}
table{border-collapse:collapse}
td{padding:1px 10px 1px 0}
td.ms{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:flex;height:10px;width:320px;background:#eee;margin-top:4px}
.bar div{height:100%}
"""

_STAGE_COLOURS = dict(zip(TIMING_STAGES, ("#888", "#0082c8", "#e6194b", "#3cb44b", "#f58230"), strict=True))

_SCRIPT = """
(function () {
  var steps = Array.prototype.slice.call(document.querySelectorAll('section.step'));
  var links = Array.prototype.slice.call(document.querySelectorAll('#strip a'));
  var position = document.getElementById('position');
  var current = 0;
  function show(i) {
    if (!steps.length) { return; }
    current = Math.max(0, Math.min(steps.length - 1, i));
    steps.forEach(function (s, k) { s.classList.toggle('current', k === current); });
    links.forEach(function (a, k) { a.classList.toggle('current', k === current); });
    position.textContent = 'step ' + (current + 1) + ' / ' + steps.length;
    if (location.hash !== '#step-' + current) { history.replaceState(null, '', '#step-' + current); }
  }
  document.getElementById('prev').addEventListener('click', function () { show(current - 1); });
  document.getElementById('next').addEventListener('click', function () { show(current + 1); });
  links.forEach(function (a, k) {
    a.addEventListener('click', function (e) { e.preventDefault(); show(k); });
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'ArrowLeft') { show(current - 1); }
    if (e.key === 'ArrowRight') { show(current + 1); }
  });
  var match = /^#step-(\\d+)$/.exec(location.hash);
  show(match ? parseInt(match[1], 10) : 0);
  document.body.dataset.ready = '1';
})();
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
"""No fetch, no remote image, no form: the page cannot reach a network even if some text slipped through."""


def render_page(
    summary: dict[str, Any], entries: list[dict[str, Any]], image_uri: Callable[[str | None], str | None]
) -> str:
    """The whole page as one string; every string from the model or the user passes through ``escape``."""
    e = _escape
    strip = "".join(
        f'<a href="#step-{k}" class="{"err" if entry["error"] else ""}" title="{e(_short_action(entry))}">'
        f"{entry['index']}</a>"
        for k, entry in enumerate(entries)
    )
    sections = "".join(
        _render_step(k, entry, image_uri(entry["screenshot"])) for k, entry in enumerate(entries)
    )
    if not entries:
        sections = '<p class="none">No steps were recorded.</p>'
    medians = summary["median_timings_ms"]
    median_text = ", ".join(f"{stage} {_ms(value)}" for stage, value in medians.items() if value is not None)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trajectory: {e(summary["goal"])}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Goal: {e(summary["goal"]) or '<span class="none">(none given)</span>'}</h1>
<div class="meta">
<span>stop reason: <b id="stop-reason">{e(summary["stop_reason"] or "not recorded")}</b></span>
<span>steps: {summary["num_steps"]}</span><span>errors: {summary["num_errors"]}</span>
<span>executed: {summary["num_executed"]}</span><span>median ms: {e(median_text) or "-"}</span></div>
</header>
<nav><button id="prev" type="button">&larr; prev</button><button id="next" type="button">next &rarr;</button>
<span id="position"></span><div id="strip">{strip}</div></nav>
<main>{sections}</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _render_step(k: int, entry: dict[str, Any], image: str | None) -> str:
    e = _escape
    figure = (
        f'<figure><img alt="screenshot of step {entry["index"]}" src="{image}"></figure>'
        if image
        else '<figure><p class="none">no screenshot</p></figure>'
    )
    action = json.dumps(entry["action"], indent=2, ensure_ascii=False) if entry["action"] else None
    outcome = json.dumps(entry["outcome"], indent=2, ensure_ascii=False) if entry["outcome"] else None
    return (
        f'<section class="step" id="step-{k}" data-index="{entry["index"]}">{figure}<div class="facts">'
        f"<h2>Step {entry['index']}: {e(_short_action(entry))}</h2>"
        f"{_block('Error', entry['error'], 'error')}"
        f"{_block('Prompt', entry['prompt'])}"
        f"{_block('Model text', entry['raw_text'])}"
        f"{_block('Parsed action', action)}"
        f"{_block('Outcome', outcome)}"
        f"<h3>Timings</h3>{_timings(entry['timings_ms'])}"
        f"</div></section>"
    )


def _block(title: str, text: str | None, css: str = "") -> str:
    if not text:
        return "" if css == "error" else f'<h3>{title}</h3><p class="none">none</p>'
    return f'<h3>{title}</h3><pre class="{css}">{_escape(text)}</pre>'


def _timings(timings: dict[str, float]) -> str:
    total = sum(timings.values())
    rows = "".join(
        f'<tr><td><span style="color:{_STAGE_COLOURS.get(stage, "#888")}">&#9632;</span> '
        f"{_escape(stage)}</td>"
        f'<td class="ms">{_ms(value)}</td></tr>'
        for stage, value in timings.items()
    )
    bar = "".join(
        f'<div style="width:{100 * value / total:.2f}%;background:{_STAGE_COLOURS.get(stage, "#888")}"></div>'
        for stage, value in timings.items()
        if total > 0 and value > 0
    )
    return f'<table>{rows}<tr><td><b>total</b></td><td class="ms"><b>{_ms(total)}</b></td></tr></table>' + (
        f'<div class="bar">{bar}</div>'
    )


def _short_action(entry: dict[str, Any]) -> str:
    action = entry["action"]
    if action is None:
        return "no action" if entry["error"] else "no action (see model text)"
    details = [f"{key}={value}" for key, value in action.items() if key != "type"]
    return action["type"] + (f" ({', '.join(details)})" if details else "")


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _escape(text: Any) -> str:
    """HTML-escape text for element content and quoted attributes alike (quotes included)."""
    return html.escape(str(text), quote=True)
