"""How the lazy AndroidControl catalog scales: index build time, read speed and peak memory per dataset size.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/androidcontrol_reader.py [--sizes 16 96] [--shards 4]

For each size it writes a dataset in the release's format (GZIP TFRecord shards of ``tf.train.Example``s)
whose screenshots look like real Android ones to PNG: 1080x2400, flat UI regions (bars, cards) with
text-like noise and sometimes a photo-like thumbnail, 0.4-0.8 MB each, 4-8 screens per episode. Then, in a
fresh subprocess per size (so peak RSS is that size's alone):

- the index build time (``open_catalog(rebuild=True)``: one scan of every shard) and a cached open;
- episodes/s and MB/s of records for loading every episode in dataset order and decoding one screenshot
  of each (what an evaluation loop does at least);
- peak RSS (``ru_maxrss``; imports may set it), the largest current RSS sampled after each load, and the
  index file's size;
- with ``--eager`` (on by default), the same loop over ``load_episodes`` (everything in memory) in
  another subprocess, for comparison.

The screenshots come from a pool of ``--pool`` distinct images (drawing and PNG-encoding 1080x2400 frames
is the slow part); records still hold every screenshot's bytes, so reading costs what it would.
Prints a table with the ratio of peak RSS between the largest and smallest size and writes JSON to
``benchmarks/results/androidcontrol_reader.json``. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molmo_envs.androidcontrol.episodes import Element, Episode
from molmo_envs.androidcontrol.writer import build_forest, write_dataset

WIDTH, HEIGHT = 1080, 2400
RESULTS = Path(__file__).parent / "results" / "androidcontrol_reader.json"


# --- data ------------------------------------------------------------------------------------------------


def _text_lines(img: np.ndarray, rng: np.random.Generator, top: int, bottom: int, left: int) -> None:
    """Dark glyph-like speckle in 34 px lines: what anti-aliased text costs a PNG encoder."""
    y = top + 30
    while y + 34 < bottom:
        width = int(rng.integers(150, (WIDTH - 32 - left) * 3 // 4))
        glyphs = rng.random((34, width)) < 0.2
        shade = rng.integers(0, 110, (34, width))
        region = img[y : y + 34, left : left + width]
        region[glyphs] = shade[glyphs][:, None]
        y += 56


def _thumbnail(img: np.ndarray, rng: np.random.Generator, top: int, side: int) -> None:
    """A photo-like square: a colour gradient plus sensor noise."""
    gradient = np.linspace(0, 1, side)[:, None, None] * rng.integers(40, 200, 3) + rng.integers(0, 60, 3)
    photo = gradient + rng.normal(0, 6, (side, side, 3))
    img[top : top + side, 56 : 56 + side] = np.clip(photo, 0, 255).astype(np.uint8)


def screenshot(seed: int) -> bytes:
    """A 1080x2400 PNG laid out like an Android list screen (status bar, app bar, cards, nav bar)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:] = rng.integers(235, 256, 3)
    img[:72] = rng.integers(20, 120, 3)
    img[72:230] = rng.integers(40, 200, 3)
    y = 260
    while y < HEIGHT - 260:
        card = int(rng.integers(140, 320))
        img[y : y + card, 32 : WIDTH - 32] = rng.integers(200, 256, 3)
        left = 72
        if rng.random() < 0.3:
            _thumbnail(img, rng, y + 20, card - 40)
            left = 56 + card - 40 + 30
        _text_lines(img, rng, y, y + card, left)
        y += card + 24
    img[HEIGHT - 160 :] = rng.integers(0, 60, 3)
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="PNG")
    return buffer.getvalue()


def _forest() -> bytes:
    rows = [
        Element((32, 260 + 200 * i, WIDTH - 32, 440 + 200 * i), text=f"Row {i}", clickable=True)
        for i in range(8)
    ]
    return build_forest([Element((0, 0, WIDTH, HEIGHT), class_name="android.widget.FrameLayout"), *rows])


def _episode(episode_id: int, pool: Sequence[bytes], forest: bytes, rng: np.random.Generator) -> Episode:
    screens = int(rng.integers(4, 9))
    actions = [
        {"action_type": "click", "x": int(rng.integers(40, WIDTH - 40)), "y": int(rng.integers(300, 2000))}
        if step % 3 != 2
        else {"action_type": "scroll", "direction": "down"}
        for step in range(screens - 1)
    ]
    return Episode(
        episode_id=episode_id,
        goal=f"Benchmark goal number {episode_id}",
        screenshots=tuple(pool[int(i)] for i in rng.integers(0, len(pool), screens)),
        screenshot_sizes=((WIDTH, HEIGHT),) * screens,
        accessibility_trees=(forest,) * screens,
        actions=tuple(actions),
        step_instructions=tuple(f"step {step}" for step in range(screens - 1)),
    )


def write_benchmark_dataset(data_dir: Path, count: int, pool: Sequence[bytes], shards: int) -> int:
    """A fresh dataset of ``count`` episodes; returns its bytes on disk."""
    shutil.rmtree(data_dir, ignore_errors=True)
    rng, forest = np.random.default_rng(count), _forest()
    episodes = [_episode(10_000 + i, pool, forest, rng) for i in range(count)]
    return sum(p.stat().st_size for p in write_dataset(data_dir, episodes, num_shards=shards))


# --- measuring (in a subprocess) ----------------------------------------------------------------------------


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _current_rss_mib() -> float:
    """Resident memory now (``ru_maxrss`` is a high-water mark that imports may already have set)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_catalog(data_dir: Path) -> dict[str, Any]:
    import PIL.PngImagePlugin  # noqa: F401  (imported before timing, as a running evaluation has it)

    from molmo_envs.androidcontrol.catalog import open_catalog

    baseline, baseline_now = _peak_rss_mib(), _current_rss_mib()
    started = time.perf_counter()
    catalog = open_catalog(data_dir, None, rebuild=True)
    built = time.perf_counter() - started
    started = time.perf_counter()
    open_catalog(data_dir, None).close()
    cached = time.perf_counter() - started
    index = json.loads(catalog.index_path.read_text())
    record_bytes = sum(row[3] for row in index["episodes"])
    started, sampled = time.perf_counter(), 0.0
    for i in range(len(catalog)):
        catalog.load(i).screenshot(0)
        sampled = max(sampled, _current_rss_mib())
    elapsed = time.perf_counter() - started
    catalog.close()
    return {
        "episodes": len(catalog),
        "record_mb": record_bytes / 1e6,
        "index_build_s": built,
        "index_cached_open_s": cached,
        "load_s": elapsed,
        "episodes_per_s": len(catalog) / elapsed,
        "record_mb_per_s": record_bytes / 1e6 / elapsed,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_rss_after_imports_mib": baseline,
        "rss_after_imports_mib": baseline_now,
        "rss_max_sampled_while_loading_mib": sampled,
        "index_bytes": catalog.index_path.stat().st_size,
        "stream_opens": catalog.stream_opens,
    }


def measure_eager(data_dir: Path) -> dict[str, Any]:
    import PIL.PngImagePlugin  # noqa: F401

    from molmo_envs.androidcontrol.episodes import load_episodes

    started = time.perf_counter()
    episodes = load_episodes(data_dir, None)
    for episode in episodes:
        episode.screenshot(0)
    elapsed = time.perf_counter() - started
    return {
        "eager_load_s": elapsed,
        "eager_peak_rss_mib": _peak_rss_mib(),
        "eager_rss_after_load_mib": _current_rss_mib(),
    }


def _in_subprocess(mode: str, data_dir: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", mode, str(data_dir)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ})
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report -------------------------------------------------------------------------------------------------


def _table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        f"{'episodes':>8} {'data MB':>8} {'index s':>8} {'cached s':>8} {'ep/s':>6} {'MB/s':>6} "
        f"{'peak RSS MiB':>12} {'RSS loading':>11} {'index kB':>8} {'eager RSS MiB':>13}"
    )
    lines = [header]
    for r in rows:
        eager = f"{r['eager_peak_rss_mib']:13.0f}" if "eager_peak_rss_mib" in r else f"{'-':>13}"
        lines.append(
            f"{r['episodes']:8d} {r['data_mb']:8.0f} {r['index_build_s']:8.2f} "
            f"{r['index_cached_open_s']:8.3f} {r['episodes_per_s']:6.1f} {r['record_mb_per_s']:6.0f} "
            f"{r['peak_rss_mib']:12.0f} {r['rss_max_sampled_while_loading_mib']:11.0f} "
            f"{r['index_bytes'] / 1e3:8.1f} {eager}"
        )
    return "\n".join(lines)


def _ratios(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    small, large = rows[0], rows[-1]
    ratios = {
        "episodes": large["episodes"] / small["episodes"],
        "peak_rss": large["peak_rss_mib"] / small["peak_rss_mib"],
        "rss_while_loading": large["rss_max_sampled_while_loading_mib"]
        / small["rss_max_sampled_while_loading_mib"],
    }
    if "eager_peak_rss_mib" in small:
        ratios["eager_peak_rss"] = large["eager_peak_rss_mib"] / small["eager_peak_rss_mib"]
    return ratios


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    pool = [screenshot(seed) for seed in range(args.pool)]
    print(f"{len(pool)} screenshots, {np.mean([len(p) for p in pool]) / 1e3:.0f} kB on average", flush=True)
    rows = []
    for count in sorted(args.sizes):
        data_dir = args.data / f"episodes_{count}"
        row = {"data_mb": write_benchmark_dataset(data_dir, count, pool, args.shards) / 1e6}
        row.update(_in_subprocess("catalog", data_dir))
        if args.eager:
            row.update(_in_subprocess("eager", data_dir))
        rows.append(row)
        print(f"{count} episodes measured ({time.perf_counter() - started:.0f} s so far)", flush=True)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "description": "AndroidControl lazy catalog: index build, in-order load + one screenshot decode per "
        "episode, peak RSS; GZIP shards of 1080x2400 PNG screenshots, 4-8 per episode",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "shards": args.shards,
        "screenshot_pool": args.pool,
        "screenshot_kb_mean": float(np.mean([len(p) for p in pool]) / 1e3),
        "results": rows,
        "ratios_largest_to_smallest": _ratios(rows),
        "total_s": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 96], help="episodes per dataset")
    parser.add_argument("--shards", type=int, default=4, help="GZIP shards per dataset")
    parser.add_argument("--pool", type=int, default=24, help="distinct screenshots to draw")
    parser.add_argument("--data", type=Path, default=Path("/tmp/androidcontrol_reader_bench"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-eager", dest="eager", action="store_false", help="skip the load_episodes run")
    parser.add_argument("--keep", action="store_true", help="keep the written datasets")
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        mode, data_dir = args.measure
        print(json.dumps((measure_catalog if mode == "catalog" else measure_eager)(Path(data_dir))))
        return
    report = run(args)
    print(_table(report["results"]))
    ratios = report["ratios_largest_to_smallest"]
    print(
        f"{ratios['episodes']:.0f}x the episodes: peak RSS x{ratios['peak_rss']:.2f} with the catalog "
        f"(RSS while loading x{ratios['rss_while_loading']:.2f})"
        + (f", x{ratios['eager_peak_rss']:.2f} with load_episodes" if "eager_peak_rss" in ratios else "")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
