"""Fine-tuning Molmo2 checkpoints on pointing and action supervision (``molmo-agent finetune``)."""

from .batches import Mixture, SourceSpec, TurnCollator
from .examples import Example, android_control_examples, pixmo_points_examples
from .trainer import FinetuneConfig, FinetuneError, finetune

__all__ = [
    "Example",
    "FinetuneConfig",
    "FinetuneError",
    "Mixture",
    "SourceSpec",
    "TurnCollator",
    "android_control_examples",
    "finetune",
    "pixmo_points_examples",
]
