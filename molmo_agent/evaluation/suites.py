"""The default model's headline settings as eval configurations: one definition for the CLI command in
the README, ``demo``, the trainer's periodic evaluation and ``benchmarks/eval_default_model.py``.

SyntheticGui's headline is first-tap success on "tap the <colour> <shape> icon" (a 540x960 phone screen
filled by the app, difficulty 0; only the first action counts); TabletopPointing's is the median 3-D error
and hit rate of one point per scene. Seeds 0.. are held out: training draws seeds from 1,000,000 up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..model import MolmoModel
from .harness import EvalConfig, evaluate_in_memory, run_eval
from .views import PLAIN, View


@dataclass(frozen=True)
class Suite:
    """An env with the arguments that define a headline number."""

    name: str
    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None

    def config(self, out_dir: Path | str, episodes: int, *, seed: int = 0, view: View = PLAIN) -> EvalConfig:
        return EvalConfig(
            env_id=self.env_id,
            out_dir=Path(out_dir),
            episodes=episodes,
            seed=seed,
            env_kwargs=dict(self.env_kwargs),
            max_episode_steps=self.max_episode_steps,
            view=view,
            screens="all",  # the demo's pages show every episode
        )

    def command(self, episodes: int = 200, seed: int = 0) -> str:
        """The ``molmo-agent eval`` command line that gives this suite's number."""
        args = [f"--env-arg {key}={_cli_value(value)}" for key, value in self.env_kwargs.items()]
        if self.max_episode_steps is not None:
            args.append(f"--max-episode-steps {self.max_episode_steps}")
        return " ".join(["molmo-agent eval", self.env_id, *args, f"--seed {seed} --episodes {episodes}"])


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


SUITES: dict[str, Suite] = {
    "synthetic_gui": Suite(
        "synthetic_gui",
        "molmo_agent/SyntheticGui-v0",
        {"task": "icon", "difficulty": 0, "random_size": False, "screen_size": [540, 960]},
        max_episode_steps=1,
    ),
    "tabletop": Suite("tabletop", "molmo_agent/TabletopPointing-v0", {"image_size": [320, 240]}),
}


def suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"suite must be one of {tuple(SUITES)}, got {name!r}")
    return SUITES[name]


def score_suite(
    model: MolmoModel,
    name: str,
    seeds: Sequence[int],
    view: View = PLAIN,
    *,
    out_dir: Path | None = None,
    progress: bool = False,
    env_overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> tuple[dict[str, Any], list[dict]]:
    """(summary, step records) of a suite on the given seeds; with ``out_dir`` a full eval folder too.

    ``env_overrides`` changes env arguments (harder settings for reference; not the headline)."""
    seeds = [int(s) for s in seeds]
    chosen = suite(name)
    if env_overrides:
        chosen = replace(chosen, env_kwargs={**chosen.env_kwargs, **env_overrides})
    config = chosen.config(out_dir or Path("."), max(len(seeds), 1), seed=0, view=view)
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds))) if seeds else True
    if out_dir is not None and contiguous and seeds:
        config = chosen.config(out_dir, len(seeds), seed=seeds[0], view=view)
        summary = run_eval(config, model, progress=progress, force=force)
        return summary, _read_records(out_dir)
    return evaluate_in_memory(config, model, seeds)


def _read_records(out_dir: Path) -> list[dict]:
    import json

    from .harness import STEPS_FILE

    lines = (out_dir / STEPS_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return sorted(records, key=lambda r: (r["episode"], r["step"]))
