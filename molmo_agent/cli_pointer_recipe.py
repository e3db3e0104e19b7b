"""The command line of the embedded default's training recipe: ``molmo-agent finetune``'s options plus the
knobs of :mod:`molmo_agent.training.pointer_recipe`.

    python -m molmo_agent.cli_pointer_recipe --init-preset pointer-numbers-fine --out RUN \\
        --attend-weight 1 --place-weight 3 --vision-lr-scale 0.1 ...

Why a second entry and not options of ``finetune``: the knobs are the research of one tiny model trained
from scratch (``benchmarks/train_default_cpu.sh`` passes them stage by stage), not settings for someone
fine-tuning a released Molmo. The run itself is the ``finetune`` verb's: same checks, messages, exit codes.
"""

from __future__ import annotations

import argparse
import sys

from .cli_checks import above, at_least

PROG = "python -m molmo_agent.cli_pointer_recipe"


def objective_from_args(args: argparse.Namespace):
    """The recipe's objective for a parsed command line; ``FinetuneError`` (a usage error, reported by the
    ``finetune`` check) for bad combinations. Imported here, when the checks run, to keep ``--help`` light."""
    from .training.pointer_recipe import PointerObjective, PointerRecipe

    return PointerObjective(
        PointerRecipe(
            attend_weight=args.attend_weight,
            attend_axis_heads=args.attend_axis_heads,
            place_weight=args.place_weight,
            vision_lr_scale=args.vision_lr_scale,
            reuse=args.reuse,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    """``molmo-agent finetune``'s own options (one table: :func:`cli_parser.add_finetune_arguments`) plus
    the recipe's; the namespace runs as the ``finetune`` verb with this recipe's objective."""
    from .cli_parser import EXIT_CODES, HelpFormatter, Parser, add_finetune_arguments

    parser = Parser(
        prog=PROG,
        description="Train as the embedded default was trained: finetune plus the tiny-pointer recipe.",
        epilog=EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress, and show tracebacks")
    add_finetune_arguments(parser)
    recipe = parser.add_argument_group("the tiny-pointer recipe (see molmo_agent/training/pointer_recipe.py)")
    recipe.add_argument(
        "--attend-weight", type=at_least(0, float), default=0.0, help="weight of the attention loss (0: off)"
    )
    recipe.add_argument(
        "--attend-axis-heads",
        action="store_true",
        help="with --attend-weight: head 0 looks at the point at x coordinates, head 1 at y",
    )
    recipe.add_argument(
        "--place-weight", type=at_least(0, float), default=0.0, help="weight of the place loss (0: off)"
    )
    recipe.add_argument(
        "--vision-lr-scale", type=above(0), default=1.0, help="lr multiplier for the ViT and image adapter"
    )
    recipe.add_argument(
        "--reuse", type=at_least(1), default=1, help="train on each generated batch this many times"
    )
    parser.set_defaults(command="finetune", make_objective=objective_from_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs through the CLI's ``finetune`` path: the same up-front checks, messages and exit codes."""
    from .cli import main as cli_main

    return cli_main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
