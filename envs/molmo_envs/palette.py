"""The one colour palette of the synthetic worlds: the RGB of every colour name an instruction may use.

SyntheticGui's elements and TabletopPointing's objects draw from it; each env keeps its own ordered choice
of names (the order decides what a seed draws, so it is part of each env's definition).
"""

from __future__ import annotations

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 47),
    "orange": (240, 140, 20),
    "yellow": (235, 200, 30),
    "green": (60, 170, 70),
    "teal": (20, 150, 150),
    "blue": (40, 100, 220),
    "purple": (130, 70, 190),
    "pink": (230, 100, 170),
    "gray": (120, 120, 120),
    "black": (30, 30, 30),
    "white": (240, 240, 240),
}
"""RGB by colour name."""
