"""How fine must a model's image tokens be to tap SyntheticGui icons? The ceiling of each token layout.

    python benchmarks/token_grid_ceiling.py [--seeds 300] [--preset pointer-words pointer-numbers-fine ...]

For the headline task (540x960 phone screen filled by the app, difficulty 0, icon named by colour and
shape), an oracle picks the image token whose cell holds the named icon's centre and taps that cell's
centre; the script prints, per preset and per view (the low-resolution whole image, the stitched
high-resolution crops), how often that tap lands inside the icon.

Why: a model that has learnt perfectly *which* token holds the icon but reads nothing finer from it taps
at most this often. A layout whose best view is under the 90% bar must read positions *within* a token
from the ViT features, a much slower thing to learn from scratch (docs/training/README.md). It needs no
model, only the processor each preset ships with, so it runs in seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "envs")]

from molmo_agent.training.batches import cell_centres, cell_index, view_cells  # noqa: E402
from molmo_agent.training.tiny_molmo2 import PRESETS, image_processor_for  # noqa: E402

SCREEN = (540, 960)
DEFAULT_PRESETS = ("pointer", "pointer-words", "pointer-fine", "pointer-numbers-fine")

Box = tuple[float, float, float, float]


def icon_boxes(seeds: int) -> tuple[list[Box], object]:
    """The named icon's box on each held-out screen (seeds 0..N-1, as the evaluation uses), and a screen."""
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    env = SyntheticGuiEnv(screen_size=SCREEN, task="icon", difficulty=0, random_size=False)
    boxes, screen = [], None
    for seed in range(seeds):
        obs, info = env.reset(seed=seed)
        boxes.append(tuple(info["target"]["box"]))
        screen = obs["screenshot"]
    return boxes, screen


def cell_centre_hit_rate(boxes: list[Box], rows: int, cols: int) -> float:
    """Share of boxes that contain the centre of the grid cell (of ``rows`` x ``cols`` over the screen)
    holding the box's centre."""
    width, height = SCREEN
    centres = cell_centres(rows, cols)
    hits = 0
    for x0, y0, x1, y1 in boxes:
        tap_x, tap_y = centres[cell_index((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, rows, cols)]
        hits += x0 <= tap_x * width <= x1 and y0 <= tap_y * height <= y1
    return hits / max(len(boxes), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=300, help="held-out screens (seeds 0..N-1)")
    parser.add_argument("--preset", nargs="+", default=list(DEFAULT_PRESETS), choices=sorted(PRESETS))
    args = parser.parse_args(argv)
    boxes, screen = icon_boxes(args.seeds)
    sides = sorted(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes)
    print(f"{len(boxes)} screens {SCREEN[0]}x{SCREEN[1]}; icon side: median {sides[len(sides) // 2]} px")
    for name in args.preset:
        spec = PRESETS[name]
        grids = image_processor_for(spec)(images=[screen], return_tensors="pt")["image_grids"][0].tolist()
        views = view_cells(grids)
        rates = [cell_centre_hit_rate(boxes, rows, cols) for rows, cols in views]
        cells = ", ".join(f"{r}x{c} -> {100 * rate:.1f}%" for (r, c), rate in zip(views, rates, strict=True))
        tokens = sum(r * c for r, c in views)
        print(f"{name:22s} crops {spec.crop_size} px, pooling {spec.pooling_size}: {tokens} tokens; {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
