"""Fine-tuning Molmo2 checkpoints on pointing and action supervision (``molmo-agent finetune``).

The names below load on first use (PEP 562): the CLI's parser reads ``tiny_molmo2.PRESETS`` from this
package, and that must not pull in torch before a verb that needs it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Mixture": "batches",
    "SourceSpec": "batches",
    "TurnCollator": "batches",
    "Example": "examples",
    "android_control_examples": "examples",
    "pixmo_points_examples": "examples",
    "FinetuneConfig": "trainer",
    "FinetuneError": "trainer",
    "finetune": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
