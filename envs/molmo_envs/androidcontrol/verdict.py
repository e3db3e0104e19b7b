"""The verdict on one scored step, shared by every AndroidControl protocol."""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class StepVerdict:
    """Whether one answer was right under a protocol, and what a report needs to show why.

    ``target_box``: the box a point had to hit, in the dataset screen's pixels (``None`` when the step
    has none). ``predicted_type``: the action type as the protocol's reference read the answer
    (``"unparsed"`` when it read none), for confusion matrices. ``truth``: the ground truth as that
    reference stores it (``Click(45.3, 71.2)``, ``CLICK <point>[[453,712]]</point>``).
    """

    correct: bool
    reason: str
    target_box: Box | None = None
    protocol: str = ""
    predicted_type: str = "unparsed"
    truth: str = ""
