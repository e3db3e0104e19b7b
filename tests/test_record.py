"""The trajectory recorder over a real agent run (scripted tiny model, dry-run executor), and its page in a
real browser when one is installed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import MISSING, chromium, chromium_available
from PIL import Image, ImageDraw

from molmo_agent.actions import Action, ActionType
from molmo_agent.agent import AgentConfig, DryRunExecutor, PointPolicy, StepRecord, run_agent
from molmo_agent.agent.record import TrajectoryRecorder
from molmo_agent.annotate import draw_action

SIZE = (640, 400)
JUNK = '<script>alert(1)</script> & "quotes" <points coords="oops'
PAGE_SCREENSHOT_COPY = Path("/tmp/trajectory_page.png")

# Per-mille answers by what the prompt names; anything else gets junk (a step the model gets wrong).
ANSWERS = {
    "Save": '<points coords="1 1 500 250">Save</points>',
    "Open": '<points coords="1 1 250 500">Open</points>',
    "report": '<points coords="1 1 200 700">report</points>',
    "trash": '<points coords="1 1 800 700">trash</points>',
    "search box": '<points coords="1 1 500 100">search box</points>',
    "Menu": '<points coords="1 1 900 900">Menu</points>',
}
QUIT_RETRY = '<points coords="1 1 700 250">Quit</points>'  # the second try at the Quit button finds it
STEPS = [
    "click the Save button",  # click at (320, 100)
    "click the Quit button",  # junk answer: recorded as an error, then retried and found at (448, 100)
    "double click Open",  # (160, 200)
    "drag the report to the trash",  # (128, 280) -> (512, 280)
    "type <b>hi</b> & bye into the search box",  # (320, 40), text with markup
    "scroll down",  # no model call
]


_ASKED: list[str] = []


def _answer(request) -> str:
    for name, answer in ANSWERS.items():
        if name in request.prompt:
            return answer
    _ASKED.append(request.prompt)
    return QUIT_RETRY if len(_ASKED) > 1 else JUNK


def _screenshot() -> Image.Image:
    image = Image.new("RGB", SIZE, (236, 236, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((280, 85, 360, 115), fill=(200, 200, 210), outline=(90, 90, 90))
    draw.text((305, 95), "Save", fill=(0, 0, 0))
    return image


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory, scripted_backend):
    """One run through the real loop, policy, parser and executor; only the model's text is scripted."""
    from molmo_agent.model import MolmoModel

    folder = tmp_path_factory.mktemp("run") / "trajectory"
    scripted_backend.script = _answer
    try:
        allowed = frozenset(ActionType) - {ActionType.RIGHT_CLICK}
        with TrajectoryRecorder(folder, "fill the form") as recorder:
            result = run_agent(
                "fill the form",
                PointPolicy(MolmoModel(scripted_backend), STEPS),
                DryRunExecutor(_screenshot()),
                AgentConfig(max_steps=20, allowed_actions=allowed),
                callbacks=[recorder],
            )
            recorder.close(result)
    finally:
        scripted_backend.script = lambda request: ""
    return folder, result


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]


def test_run_is_what_the_script_says(recorded_run) -> None:
    _, result = recorded_run
    assert result.stop_reason == "done"
    assert [s.action.type if s.action else None for s in result.steps] == [
        ActionType.CLICK,
        None,
        ActionType.CLICK,
        ActionType.DOUBLE_CLICK,
        ActionType.DRAG,
        ActionType.TYPE,
        ActionType.SCROLL,
        ActionType.DONE,
    ]


def test_jsonl_has_one_line_per_step_with_image_names(recorded_run) -> None:
    folder, result = recorded_run
    lines = _lines(folder)
    assert len(lines) == len(result.steps) == 8
    for line, step in zip(lines, result.steps, strict=True):
        assert line == {
            **step.to_dict(),
            "screenshot": f"step_{step.index:04d}.png",
            "raw_screenshot": None,
        }
        assert (folder / line["screenshot"]).is_file()
    assert lines[0]["action"] == {"type": "click", "x": 320.0, "y": 100.0}
    assert lines[1]["raw_text"].startswith(JUNK) and "could not find the target" in lines[1]["error"]
    assert lines[2]["action"] == {"type": "click", "x": 448.0, "y": 100.0}
    assert lines[4]["action"] == {"type": "drag", "x": 128.0, "y": 280.0, "x2": 512.0, "y2": 280.0}
    assert result.record_dir == str(folder)


def test_pngs_show_the_action(recorded_run) -> None:
    folder, _ = recorded_run
    original = np.asarray(_screenshot())
    drawn = np.asarray(Image.open(folder / "step_0000.png").convert("RGB"))
    assert drawn.shape == original.shape
    assert (drawn[100, 320] != original[100, 320]).any()  # the click marker
    assert (drawn[300, 600] == original[300, 600]).all()  # far from it: untouched
    unannotated = np.asarray(Image.open(folder / "step_0001.png").convert("RGB"))  # no action
    assert (unannotated == original).all()
    drag = np.asarray(Image.open(folder / "step_0004.png").convert("RGB"))
    assert (drag[280, 320] != original[280, 320]).any()  # middle of the arrow


def test_summary(recorded_run) -> None:
    folder, _ = recorded_run
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["goal"] == "fill the form"
    assert summary["stop_reason"] == "done"
    assert summary["num_steps"] == 8
    assert summary["num_errors"] == 1
    assert summary["num_executed"] == 0  # dry run: recorded, never performed
    timings = summary["median_timings_ms"]
    assert set(timings) == {"capture", "preprocess", "model", "parse", "execute", "total"}
    assert timings["model"] > 0 and timings["total"] > 0  # medians of different steps: not additive


def test_page_is_self_contained_and_escaped(recorded_run) -> None:
    folder, _ = recorded_run
    page = (folder / "index.html").read_text()
    assert not re.search(r"https?://", page)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", page)  # nothing fetched, no file links
    assert page.count("data:image/png;base64,") == 8
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "<b>hi</b>" not in page and "&lt;b&gt;hi&lt;/b&gt; &amp; bye" in page
    assert "&lt;points coords=&quot;1 1 500 250&quot;&gt;" in page  # the answer, escaped
    assert page.count("<script>") == 1  # only the page's own
    assert page.count('<section class="step"') == 8


def test_files_of_an_interrupted_run(tmp_path) -> None:
    """A crash inside the ``with`` still leaves a page saying why; raw screenshots kept on request."""
    screen = _screenshot()
    with pytest.raises(RuntimeError), TrajectoryRecorder(tmp_path, "g", keep_raw_screenshots=True) as rec:
        rec(StepRecord(index=0, screenshot=screen, action=Action(type="click", x=5, y=5)))
        rec(StepRecord(index=1, error="boom"))  # no screenshot at all
        raise RuntimeError("bug <here>")
    lines = _lines(tmp_path)
    assert lines[0]["raw_screenshot"] == "step_0000_raw.png" and lines[1]["screenshot"] is None
    assert (np.asarray(Image.open(tmp_path / "step_0000_raw.png")) == np.asarray(screen)).all()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stop_reason"] == "error: RuntimeError: bug <here>"
    page = (tmp_path / "index.html").read_text()
    assert "bug &lt;here&gt;" in page and "no screenshot" in page


def test_empty_run_page(tmp_path) -> None:
    TrajectoryRecorder(tmp_path / "new" / "run").close()
    assert "No steps were recorded" in (tmp_path / "new" / "run" / "index.html").read_text()
    assert json.loads((tmp_path / "new" / "run" / "summary.json").read_text())["num_steps"] == 0


@pytest.mark.parametrize(
    "action",
    [
        Action(type="click", x=100, y=60),
        Action(type="double_click", x=100, y=60),
        Action(type="right_click", x=100, y=60),
        Action(type="long_press", x=100, y=60),
        Action(type="type", x=100, y=60, text="hello"),
    ],
)
def test_draw_action_marks_the_point_and_each_press_looks_different(action: Action) -> None:
    image = Image.new("RGB", (200, 120), (128, 128, 128))
    drawn = draw_action(image, action)
    assert drawn is not image and image.getpixel((100, 60)) == (128, 128, 128)
    assert drawn.getpixel((100, 60)) != (128, 128, 128)
    plain = np.asarray(draw_action(image, Action(type="click", x=100, y=60)))
    assert action.type is ActionType.CLICK or (np.asarray(drawn) != plain).any()


@pytest.mark.parametrize(
    ("direction", "pixel"),
    [("up", (100, 10)), ("down", (100, 94)), ("left", (10, 60)), ("right", (189, 60))],
)
def test_draw_action_scroll_arrow_at_the_edge(direction: str, pixel: tuple[int, int]) -> None:
    image = Image.new("RGB", (200, 120), (128, 128, 128))
    drawn = draw_action(image, Action(type="scroll", direction=direction))
    assert drawn.getpixel(pixel) != (128, 128, 128)


def test_draw_action_text_without_position_goes_on_top() -> None:
    image = Image.new("RGB", (200, 120), (128, 128, 128))
    drawn = np.asarray(draw_action(image, Action(type="input_text", text="hello")))
    changed = (drawn != 128).any(axis=-1)
    assert changed[:20].any() and changed[100:].any()  # the text on top, the caption at the bottom
    assert not changed[40:80].any()


@pytest.mark.skipif(not chromium_available(), reason=MISSING)
def test_page_renders_in_headless_chromium(recorded_run, tmp_path) -> None:
    folder, _ = recorded_run
    url = (folder / "index.html").as_uri()
    dom = chromium("--dump-dom", f"{url}#step-3", tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-ready="1"' in dom.stdout, "the page's script did not finish: " + dom.stderr[-2000:]
    assert dom.stdout.count('<section class="step') == 8
    assert re.search(r'<section class="step current" id="step-3"', dom.stdout)  # the hash picked the step
    assert "step 4 / 8" in dom.stdout
    assert "Uncaught" not in dom.stderr and "Content Security Policy" not in dom.stderr
    shot = tmp_path / "page.png"
    rendered = chromium(f"--screenshot={shot}", url, tmp=tmp_path)
    assert rendered.returncode == 0 and shot.is_file(), rendered.stderr[-2000:]
    page = np.asarray(Image.open(shot).convert("RGB"))
    assert page.shape[:2] == (900, 1280) and page.std() > 10  # something was drawn
    shutil.copyfile(shot, PAGE_SCREENSHOT_COPY)
