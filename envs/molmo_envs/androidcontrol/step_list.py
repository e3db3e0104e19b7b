"""Lists of (episode, step) pairs to evaluate on, e.g. the 7,708-step sample OS-Atlas reported.

Accepted line formats (blank lines and ``#`` comments are skipped):

- ``episode_140_screenshot_2``: OS-Atlas's ``eval/data/ac_idx.txt`` (step ``i`` is taken on screenshot ``i``),
- ``140 2``, ``140,2`` or ``140<TAB>2``: episode id and 0-based step index,
- ``{"episode_id": 140, "step": 2}``: one JSON object per line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_OS_ATLAS = re.compile(r"^episode_(\d+)_screenshot_(\d+)(?:\.png)?$")
_PAIR = re.compile(r"^(\d+)\s*[,\s]\s*(\d+)$")


def _parse_line(line: str) -> tuple[int, int] | None:
    match = _OS_ATLAS.match(line) or _PAIR.match(line)
    if match:
        return int(match.group(1)), int(match.group(2))
    if line.startswith("{"):
        try:
            record = json.loads(line)
            return int(record["episode_id"]), int(record["step"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def read_step_list(path: str | Path) -> dict[int, list[int]]:
    """Episode id -> sorted, distinct step indices listed in ``path``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line in none of the accepted formats (its number and text are in the message).
    """
    path = Path(path)
    steps: dict[int, set[int]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pair = _parse_line(line)
        if pair is None:
            raise ValueError(
                f"{path}:{number}: {line[:80]!r} is not a step; write 'episode_140_screenshot_2', "
                "'140 2' or a JSON object with episode_id and step"
            )
        steps.setdefault(pair[0], set()).add(pair[1])
    return {episode: sorted(indices) for episode, indices in steps.items()}
