"""Protocol ``distance14``: AndroidControl step accuracy as OS-Atlas's released script computes it.

Reference (read, not copied): OS-Copilot/OS-Atlas ``eval/eval_scripts/android_control/evaluation_unify.py``,
also used for UI-TARS's comparison table. It compares OS-Atlas-format action strings (``CLICK
<point>[[x,y]]</point>`` on a 0-1000 grid, ``TYPE [text]``, ``SCROLL [UP]``, ``OPEN_APP [name]``,
``PRESS_BACK``, ``PRESS_HOME``, ``WAIT``, ``LONG_PRESS <point>...``). What it does, oddities included:

1. The prediction is the text after the first ``actions:\\n`` and before a second one, with every leading
   and trailing character in the *set* ``<|im_end>`` removed (``str.strip("<|im_end|>")``: an answer
   ending in ``...send`` loses ``end``); no ``actions:\\n`` at all is an invalid action.
2. Action types are the first whitespace token, compared **case-sensitively** (``click`` is not ``CLICK``).
3. Click and long press: the first two unsigned integers of each string (``\\d+``: ``500.7`` reads 500,
   a minus sign is dropped) must lie within Euclidean distance ``0.14 * 1000`` on the 0-1000 grid; a
   prediction without two numbers is placed at (-100, -100).
4. ``TYPE`` and ``OPEN_APP``: right when the whole strings are equal, or when the **second whitespace
   token** of each (``[Shanghai`` of ``TYPE [Shanghai shopping mall]``) has token F1 > 0.5 over sets of
   lower-cased tokens, i.e. when the first words, bracket included, agree ignoring case. Everything after
   the first word is ignored.
5. Everything else (``SCROLL [UP]``, ``PRESS_BACK``, ``WAIT`` ...) must equal the ground truth exactly.
Where the script would raise (an empty prediction, a one-token ``TYPE``/``OPEN_APP``) the step is wrong.

Two things the released code does not contain and this module decides (documented, not comparable to
anything): the ground truth's grid coordinates, ``round(x / width * 1000)`` (OS-Atlas's conversion script
is unreleased), and **Molmo-format answers** (``Click(45.3, 71.2)`` in percent): they are cut and typed the
way Molmo's evaluator reads them and rewritten to OS-Atlas form first (percent times 10, rounded; text and
app names as written; ``Navigate Home`` -> ``PRESS_HOME``), so a Molmo model can be compared with OS-Atlas
and UI-TARS under their protocol. An answer neither format reads is a wrong step.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .molmo_protocol import cut_answer, read_action
from .verdict import StepVerdict

PROTOCOL = "distance14"
MAX_NEW_TOKENS = 96
RADIUS = 0.14 * 1000
"""The script's threshold on the 0-1000 grid, written as it writes it (``0.14*1000``)."""
ACTIONS_MARKER = "actions:\n"
_STRIPPED = "<|im_end|>"
_INTEGER = re.compile(r"\d+")
_SIMPLE = {"navigate home": "PRESS_HOME", "navigate back": "PRESS_BACK", "wait": "WAIT"}


def os_atlas_truth(action: Mapping[str, Any], screen_size: tuple[int, int]) -> str:
    """The dataset's action JSON as an OS-Atlas ground-truth action string (grid 0-1000)."""
    width, height = screen_size
    kind = action.get("action_type")
    if kind in ("click", "long_press"):
        x = round(float(action.get("x", 0)) / width * 1000)
        y = round(float(action.get("y", 0)) / height * 1000)
        return f"{'CLICK' if kind == 'click' else 'LONG_PRESS'} <point>[[{x},{y}]]</point>"
    if kind == "input_text":
        return f"TYPE [{action.get('text', '')}]"
    if kind == "scroll":
        return f"SCROLL [{str(action.get('direction', '')).upper()}]"
    if kind == "open_app":
        return f"OPEN_APP [{action.get('app_name', '')}]"
    return {"navigate_home": "PRESS_HOME", "navigate_back": "PRESS_BACK", "wait": "WAIT"}.get(str(kind), "")


def from_molmo_answer(answer: str) -> str | None:
    """A Molmo-format answer rewritten as the OS-Atlas action it means, or ``None`` if it is no action."""
    text = cut_answer(answer).strip()
    read = read_action(text)
    if read.type in ("click", "long press"):
        name = "CLICK" if read.type == "click" else "LONG_PRESS"
        if read.coords is None:
            return name
        return f"{name} <point>[[{round(read.coords[0] * 10)},{round(read.coords[1] * 10)}]]</point>"
    if read.type == "type":
        return f"TYPE [{text[5:]}]"
    if read.type == "open_app":
        return f"OPEN_APP [{text[9:]}]"
    if read.type == "scroll":
        return f"SCROLL [{(read.text or '').upper()}]"
    return _SIMPLE.get(read.type or "")


def prediction(answer: str) -> str | None:
    """The prediction string the script compares: OS-Atlas answers as it cuts them, Molmo ones rewritten."""
    if ACTIONS_MARKER in answer:
        return answer.split(ACTIONS_MARKER)[1].strip(_STRIPPED)
    converted = from_molmo_answer(answer)
    return None if converted is None else converted.strip(_STRIPPED)


def first_word_f1(predicted: str, truth: str) -> float:
    """``calculate_f1_score``: F1 over the *sets* of lower-cased whitespace tokens."""
    pred, gold = set(predicted.lower().split()), set(truth.lower().split())
    common = pred & gold
    precision = len(common) / len(pred) if pred else 0
    recall = len(common) / len(gold) if gold else 0
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _point(text: str) -> tuple[int, int] | None:
    numbers = _INTEGER.findall(text)
    return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None


def _verdict(correct: bool, reason: str, predicted_type: str, truth: str) -> StepVerdict:
    return StepVerdict(correct, reason, None, PROTOCOL, predicted_type, truth)


def score_distance14(answer: str, truth: str) -> StepVerdict:
    """The script's verdict for the model's raw ``answer`` against the OS-Atlas ground truth ``truth``."""
    pred = prediction(answer)
    if pred is None or not pred.split():
        return _verdict(False, f"no action the script reads in {answer[:80]!r}", "unparsed", truth)
    if not truth.split():
        return _verdict(False, "the ground truth is not an OS-Atlas action", pred.split()[0], truth)
    gt_type, pred_type = truth.split()[0], pred.split()[0]
    if gt_type != pred_type:
        return _verdict(False, f"type {pred_type} != {gt_type}", pred_type, truth)
    if gt_type in ("CLICK", "LONG_PRESS"):
        predicted = _point(pred) or (-100, -100)
        target = _point(truth)
        if target is None:
            return _verdict(False, "the ground-truth point has no coordinates", pred_type, truth)
        distance = math.hypot(predicted[0] - target[0], predicted[1] - target[1])
        hit = distance <= RADIUS
        reason = (
            f"{predicted} is {distance:.1f} from {target} on the 0-1000 grid ({'<=' if hit else '>'} 140)"
        )
        return _verdict(hit, reason, pred_type, truth)
    if gt_type in ("TYPE", "OPEN_APP"):
        if pred == truth:
            return _verdict(True, "identical", pred_type, truth)
        pred_words, gt_words = pred.split(), truth.split()
        if len(pred_words) < 2 or len(gt_words) < 2:
            return _verdict(False, "no second token to compare (the script raises here)", pred_type, truth)
        f1 = first_word_f1(pred_words[1], gt_words[1])
        reason = f"first words {pred_words[1]!r} / {gt_words[1]!r}: F1 {f1:.2f}"
        return _verdict(f1 > 0.5, reason, pred_type, truth)
    same = pred == truth
    return _verdict(same, f"{pred!r} {'==' if same else '!='} {truth!r}", pred_type, truth)
