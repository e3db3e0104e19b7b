"""AndroidControl step accuracy under the protocols papers report, each exactly as its reference computes it.

- ``molmo``: Molmo's released evaluator (:mod:`.molmo_protocol`), the protocol of Molmo-72B's 88.7%
  (low-level) / 69.0% (high-level) on the IDD test episodes; decodes at most 16 new tokens.
- ``distance14``: OS-Atlas's released script (:mod:`.distance14_protocol`), also UI-TARS's comparison: a
  click within 14% of the screen.

Numbers are comparable only within one protocol. Both score the model's raw answer text, read the way
their reference reads it: an answer the reference cannot read is a wrong step, never a substitute action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import distance14_protocol, molmo_protocol
from .molmo_protocol import MolmoTruth
from .verdict import StepVerdict

PROTOCOLS: tuple[str, ...] = ("molmo", "distance14")
Truth = MolmoTruth | str
"""A step's ground truth as the protocol's reference stores it."""


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return protocol


def default_max_new_tokens(protocol: str) -> int:
    """The generation budget the protocol's reference evaluation used (16 for ``molmo``)."""
    module = molmo_protocol if check_protocol(protocol) == "molmo" else distance14_protocol
    return module.MAX_NEW_TOKENS


def ground_truth(
    protocol: str, action: Mapping[str, Any], screen_size: tuple[int, int], forest: bytes
) -> Truth:
    """One step's ground truth for ``protocol``.

    Args:
        action: The dataset's action JSON (``json.loads``-ed).
        screen_size: ``(width, height)`` of the step's screenshot PNG.
        forest: The step's serialized ``AndroidAccessibilityForest`` (only ``molmo`` reads it).
    """
    if check_protocol(protocol) == "molmo":
        return molmo_protocol.molmo_truth(action, screen_size, molmo_protocol.forest_to_json(forest))
    return distance14_protocol.os_atlas_truth(action, screen_size)


def score_answer(protocol: str, answer: str, truth: Truth) -> StepVerdict:
    """Score the model's raw ``answer`` against ``truth`` as ``protocol``'s reference would."""
    if check_protocol(protocol) == "molmo":
        assert isinstance(truth, MolmoTruth)
        return molmo_protocol.score_molmo(answer, truth)
    assert isinstance(truth, str)
    return distance14_protocol.score_distance14(answer, truth)


__all__ = ["PROTOCOLS", "StepVerdict", "Truth", "default_max_new_tokens", "ground_truth", "score_answer"]
