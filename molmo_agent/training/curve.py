"""The learning curve as a PNG (PIL only): training loss and held-out success against steps, and below
them the loss of the coordinate digits by place (the numbers that say whether pointing is being learnt)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

_COLOURS = ((220, 50, 47), (40, 100, 220), (60, 170, 70), (130, 70, 190))
_DIGIT_COLOURS = {
    "hundreds": (230, 120, 20),
    "tens": (130, 70, 190),
    "value": (120, 80, 10),
    "attend": (30, 150, 150),
    "place": (200, 40, 120),
}
_DIGIT_LABELS = {
    "hundreds": "hundreds place",
    "tens": "tens place",
    "value": "whole coordinate / 3 (per digit)",
    "attend": "attention loss (--attend-weight)",
    "place": "place loss (--place-weight)",
}
_DIGIT_PANEL = 200
_DIGIT_TOP_NATS = 3.0
_CHANCE_NATS = 2.302585  # ln 10: a digit guessed uniformly


def plot_history(history: list[dict], path: Path, size: tuple[int, int] = (900, 420)) -> Path | None:
    """Left axis: loss (log scale); right axis: eval success (0-100 %). Returns None with no history."""
    import math

    losses = [(h["step"], h["loss"]) for h in history if h.get("loss")]
    evals = [(h["step"], h["eval"]) for h in history if h.get("eval")]
    digits = [(h["step"], _per_digit(h["digits"]) | _auxiliary(h)) for h in history if h.get("digits")]
    if not losses and not evals:
        return None
    width, height = size
    left, right, top, bottom = 70, width - 70, 40, height - 50
    image = Image.new("RGB", (width, height + (_DIGIT_PANEL if digits else 0)), "white")
    draw = ImageDraw.Draw(image)
    last_step = max([s for s, _ in losses] + [s for s, _ in evals] + [1])

    def x_of(step: float) -> float:
        return left + (right - left) * step / last_step

    draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    draw.text((left, 10), "training loss (log, left) and held-out success (right)", fill=(0, 0, 0))
    for i in range(5):
        step = last_step * i / 4
        draw.text((x_of(step) - 10, bottom + 8), f"{int(step)}", fill=(0, 0, 0))
        pct = i * 25
        y = bottom - (bottom - top) * pct / 100
        draw.text((right + 8, y - 6), f"{pct}%", fill=(0, 0, 0))
    draw.text(((left + right) // 2 - 15, bottom + 26), "step", fill=(0, 0, 0))
    if losses:
        logs = [math.log10(max(v, 1e-6)) for _, v in losses]
        low, high = min(logs), max(logs)
        span = max(high - low, 1e-6)

        def y_loss(value: float) -> float:
            return bottom - (bottom - top) * (math.log10(max(value, 1e-6)) - low) / span

        draw.line([(x_of(s), y_loss(v)) for s, v in losses], fill=(0, 0, 0), width=2)
        for value in (10**high, 10**low):
            draw.text((8, y_loss(value) - 6), f"{value:.3g}", fill=(0, 0, 0))
    names = sorted({k for _, e in evals for k in e if "error" not in k})
    for colour, name in zip(_COLOURS, names, strict=False):
        points = [(x_of(s), bottom - (bottom - top) * e[name]) for s, e in evals if name in e]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        draw.text((right - 150, top + 8 + 14 * names.index(name)), f"{name} success", fill=colour)
    if digits:
        _digit_panel(draw, digits, x_of, (left, right, height + 10, height + _DIGIT_PANEL - 20))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _per_digit(digits: dict[str, float]) -> dict[str, float]:
    """A whole-coordinate token's loss (``value``) divided by its three digits, so it reads on the same
    axis and against the same ln 10 chance line as the digit places of a one-token-per-digit model."""
    return {place: nats / 3 if place == "value" else nats for place, nats in digits.items()}


def _auxiliary(record: dict) -> dict[str, float]:
    """The auxiliary losses a record has (``attend``, ``place``): drawn in the digit panel with them."""
    return {name: record[name] for name in ("attend", "place") if name in record}


def _digit_panel(draw: ImageDraw.ImageDraw, digits: list[tuple[int, dict]], x_of, box: tuple) -> None:
    """Hundreds and tens digit losses (running mean of 10 records) against the ln 10 chance line, and the
    auxiliary losses the run had (the attention loss falls first: the model learns where to look, then the
    digits; the place loss is the mean squared error of the position code, 0.5 for features without one)."""
    left, right, top, bottom = box

    def y_of(nats: float) -> float:
        return bottom - (bottom - top) * min(nats, _DIGIT_TOP_NATS) / _DIGIT_TOP_NATS

    draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    draw.line([(left, y_of(_CHANCE_NATS)), (right, y_of(_CHANCE_NATS))], fill=(170, 170, 170), width=1)
    draw.text((right + 8, y_of(_CHANCE_NATS) - 6), "chance", fill=(120, 120, 120))
    for nats in (0.0, 1.0, 2.0, 3.0):
        draw.text((left - 30, y_of(nats) - 6), f"{nats:.0f}", fill=(0, 0, 0))
    draw.text((left, top - 14), "coordinate digit loss (nats)", fill=(0, 0, 0))
    for index, (place, colour) in enumerate(_DIGIT_COLOURS.items()):
        series = [(step, d[place]) for step, d in digits if place in d]
        if not series:
            continue
        smoothed = [
            (step, sum(v for _, v in series[max(i - 9, 0) : i + 1]) / len(series[max(i - 9, 0) : i + 1]))
            for i, (step, _) in enumerate(series)
        ]
        if len(smoothed) > 1:
            draw.line([(x_of(step), y_of(v)) for step, v in smoothed], fill=colour, width=2)
        draw.text((right - 230, top + 8 + 14 * index), _DIGIT_LABELS[place], fill=colour)
