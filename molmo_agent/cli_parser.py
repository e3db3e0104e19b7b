"""The argument table of ``molmo-agent``: every verb, option, type, range and default in one place.

Why apart from the handlers: the table is long, and keeping it whole makes it easy to see (and to test,
tests/test_cli_fuzz.py) that every option validates its value and shows its default in ``--help``. Values
are checked by their argparse types (ranges, choices, shapes); what needs the machine is checked in
:mod:`molmo_agent.cli_checks` before a verb starts.
"""

from __future__ import annotations

import argparse

from . import __version__
from .cli_checks import (
    DEVICE_HELP,
    DTYPE_NAMES,
    above,
    action_types,
    at_least,
    device,
    env_arg,
    episodes,
    port,
    region,
    text,
)
from .images import DEFAULT_MAX_TOTAL_PIXELS
from .prompts import MAX_TEXT_TOKENS
from .training.tiny_molmo2 import PRESETS

EXIT_CODES = "exit status: 0 ok, 1 failure, 2 usage error (the message says what to change), 130 interrupted"
DESCRIPTION = "Molmo pointing and GUI actions: point, serve over gRPC, drive a desktop, evaluate, fine-tune."


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none or the help already explains it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        quiet = action.default in (None, False, argparse.SUPPRESS) or "default" in help_text
        if quiet or (not action.option_strings and action.nargs not in ("?", "*")):
            return help_text
        return help_text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line: ``molmo-agent: error: ...`` and where to read more."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"molmo-agent: error: {message} (see '{self.prog} --help')\n")


def _verbose_option() -> argparse.ArgumentParser:
    """``-v`` accepted after the verb too; SUPPRESS keeps a ``-v`` given before the verb."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log progress, and show the traceback of an error",
    )
    return common


def _add_model_args(parser: argparse.ArgumentParser, *, dtype: bool = True, threads: bool = True) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="Hub id, local folder, grpc:// or openai:// URL (default: the embedded model)",
    )
    parser.add_argument(
        "--device", type=device, default=None, help=f"{DEVICE_HELP} (default: cuda if available)"
    )
    if dtype:
        parser.add_argument(
            "--dtype",
            choices=DTYPE_NAMES,
            default=None,
            help="weights' dtype (default: bf16 on cuda, else fp32)",
        )
    if threads:
        parser.add_argument(
            "--cpu-threads", type=at_least(1), default=None, help="torch CPU threads (default: torch's)"
        )
    add_quantize_arg(parser)


def add_quantize_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quantize",
        choices=["int8", "int4"],
        default=None,
        help="weight-only quantization of the linear layers (torchao; int4: CUDA only)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="molmo-agent", description=DESCRIPTION, epilog=EXIT_CODES, formatter_class=HelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress, and show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _verbose_option()

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES,
            parents=[common],
            formatter_class=HelpFormatter,
        )

    _point(verb("point", "point to an object in an image"))
    models = verb("models", "list known models and whether they are on this machine")
    models.add_argument("--json", action="store_true", help="print the table as JSON")
    _bench(verb("bench", "latency breakdown of model.point (or of the server, the agent loop, a GPU)"))
    _serve(verb("serve", "serve the model over gRPC (molmo_agent.v1.MolmoAgent)"))
    _gui(verb("gui", "drive the desktop (or dry-run a screenshot) towards a goal"))
    _eval(verb("eval", "evaluate a model on a molmo_envs environment"))
    add_finetune_arguments(verb("finetune", "fine-tune a Molmo2 checkpoint on pointing/action data"))
    _demo(verb("demo", "the default model driving SyntheticGui and TabletopPointing, offline"))
    tiny = verb("build-tiny", "write a tiny random Molmo2 checkpoint (tests, benchmarks)")
    tiny.add_argument("out", help="output folder")
    tiny.add_argument("--preset", default="tiny", choices=list(PRESETS), help="size and tokenizer")
    tiny.add_argument("--seed", type=at_least(0), default=0, help="seed of the random weights")
    return parser


def _point(point: argparse.ArgumentParser) -> None:
    point.add_argument("image", help="image file, or 'sample' for the bundled sample image")
    point.add_argument("query", type=text, help="what to point at, e.g. 'the red mug'")
    point.add_argument("--all", action="store_true", help="ask for every occurrence")
    point.add_argument("--json", action="store_true", help="print the result as JSON")
    point.add_argument("--out", help="write the image with the points drawn to this file (.png, .jpg)")
    _add_model_args(point)


def _bench(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "what", nargs="?", default="point", choices=["point", "serve", "agent", "gpu"], help="what to time"
    )
    bench.add_argument(
        "--size",
        choices=["8b", "medium", "tiny"],
        default=None,
        help="gpu: model shape (default 8b on cuda, else tiny)",
    )
    bench.add_argument(
        "--budget-s", type=at_least(0, float), default=420.0, help="gpu: skip phases past this many s"
    )
    bench.add_argument("--seconds", type=above(0), default=6.0, help="serve: seconds per throughput point")
    bench.add_argument(
        "--preset",
        default="tiny",
        choices=list(PRESETS),
        help="tiny checkpoint to build when --model is absent",
    )
    bench.add_argument(
        "--runs", type=at_least(1), default=None, help="timed runs (default 7; serve: 30; agent: 20 steps)"
    )
    bench.add_argument(
        "--budget", type=at_least(1), default=64, help="fixed token budget to compare stopping against"
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument("--out", help="also write the results as JSON here")
    _add_model_args(bench)


def _serve(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1", help="bind address (loopback: this machine only)")
    serve.add_argument("--port", type=port, default=50051, help="TCP port (0: any free port)")
    serve.add_argument("--max-batch-size", type=at_least(1), default=8, help="requests per model call")
    serve.add_argument(
        "--max-batch-wait-ms", type=at_least(0, float), default=5.0, help="wait for a batch to fill"
    )
    serve.add_argument(
        "--max-queue", type=at_least(1), default=64, help="waiting requests before RESOURCE_EXHAUSTED"
    )
    serve.add_argument("--max-message-mb", type=above(0), default=64.0, help="largest request or reply, MiB")
    serve.add_argument(
        "--max-image-pixels", type=at_least(1), default=50_000_000, help="largest image accepted"
    )
    serve.add_argument(
        "--max-new-tokens", type=at_least(1), default=512, help="largest answer budget a request may ask"
    )
    serve.add_argument(
        "--max-request-pixels",
        type=at_least(1),
        default=DEFAULT_MAX_TOTAL_PIXELS,
        help="decoded pixels of all a request's images together (read from headers before decoding)",
    )
    serve.add_argument(
        "--max-text-tokens",
        type=at_least(1),
        default=MAX_TEXT_TOKENS,
        help="tokens of a request's text fields together (queries, goals, prompts)",
    )
    serve.add_argument("--token-file", help="file whose first line is the bearer token")
    serve.add_argument("--token-env", default="MOLMO_AGENT_TOKEN", help="environment variable with the token")
    serve.add_argument("--tls-cert", help="PEM certificate chain (enables TLS)")
    serve.add_argument("--tls-key", help="PEM private key")
    serve.add_argument("--tls-client-ca", help="PEM CA that client certificates must chain to (mutual TLS)")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without a token")
    serve.add_argument(
        "--grace", type=at_least(0, float), default=10.0, help="seconds to finish in-flight requests on stop"
    )
    _add_model_args(serve)


def _gui(gui: argparse.ArgumentParser) -> None:
    gui.add_argument(
        "goal", type=text, help="e.g. 'click the Save button' or 'Turn on Wi-Fi' (with --policy action)"
    )
    gui.add_argument(
        "--policy",
        choices=["action", "point"],
        default="point",
        help="point: ground each instruction by pointing (any Molmo); action: Molmo's action format",
    )
    gui.add_argument(
        "--step", type=text, action="append", help="low-level step instruction (repeatable, one per step)"
    )
    gui.add_argument("--dry-run", action="store_true", help="observe and record, never touch the screen")
    gui.add_argument("--confirm", action="store_true", help="ask on the terminal before each action")
    gui.add_argument("--max-steps", type=at_least(1), default=10, help="stop after this many steps")
    gui.add_argument("--max-seconds", type=above(0), default=300.0, help="stop after this long")
    gui.add_argument(
        "--allow", type=action_types, help="comma-separated action types that may run (default: all)"
    )
    gui.add_argument("--record", help="folder for the trajectory (default: molmo-agent-runs/<time>)")
    gui.add_argument("--screenshot", help="dry-run on this image instead of the screen (no display needed)")
    gui.add_argument(
        "--settle", type=at_least(0, float), default=0.3, help="seconds to wait after each action"
    )
    area = gui.add_mutually_exclusive_group()
    area.add_argument(
        "--region",
        type=region,
        metavar="X,Y,W,H",
        help="see and act only inside this screen box (screen pixels); targets outside it are refused",
    )
    area.add_argument(
        "--window",
        type=text,
        metavar="TITLE",
        help="see and act only inside the window whose title contains TITLE (X11 with xdotool)",
    )
    _add_model_args(gui)


def _eval(evaluate: argparse.ArgumentParser) -> None:
    evaluate.add_argument(
        "env_id", help="a molmo_envs id, e.g. molmo_agent/SyntheticGui-v0, molmo_agent/AndroidControl-v0"
    )
    evaluate.add_argument(
        "--episodes", type=episodes, default=20, help="a number, or 'all' for a dataset env (AndroidControl)"
    )
    evaluate.add_argument(
        "--protocol", choices=["molmo", "distance14"], help="AndroidControl scoring protocol"
    )
    evaluate.add_argument(
        "--policy", choices=["auto", "action", "point"], default="auto", help="auto: by the env's observation"
    )
    evaluate.add_argument("--data-dir", help="AndroidControl: folder with the TFRecord shards and splits")
    evaluate.add_argument("--task-level", choices=["low", "high"], help="AndroidControl task level")
    evaluate.add_argument(
        "--env-arg", type=env_arg, action="append", help="extra env keyword, KEY=VALUE (repeatable)"
    )
    evaluate.add_argument("--seed", type=at_least(0), default=0, help="episode e resets with seed SEED + e")
    evaluate.add_argument(
        "--max-new-tokens",
        type=at_least(1),
        help="action answer budget (default: 16 for AndroidControl's molmo protocol, as Molmo's own "
        "evaluation, else 96)",
    )
    evaluate.add_argument(
        "--max-episode-steps",
        type=at_least(1),
        help="override the env's step limit (1: only the first action counts)",
    )
    evaluate.add_argument(
        "--force",
        action="store_true",
        help="start the output folder over when it holds another configuration",
    )
    evaluate.add_argument(
        "--concurrency",
        type=at_least(1),
        default=1,
        help="episodes in parallel (with a grpc:// or openai:// model: server or engine batching)",
    )
    evaluate.add_argument(
        "--screens",
        choices=["failures", "all", "none"],
        default="failures",
        help="which steps' screenshots the folder keeps (failures: what the report shows)",
    )
    evaluate.add_argument("--out", help="output folder (default: molmo-agent-evals/<env>); rerun to resume")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_args(evaluate)


def add_finetune_arguments(ft: argparse.ArgumentParser) -> None:
    """``finetune``'s options; public because the embedded default's recipe
    (``python -m molmo_agent.training.pointer_recipe``) takes the same ones and adds its own."""
    ft.add_argument("--model", help="Molmo2 Hub id or local folder to start from")
    ft.add_argument(
        "--init-preset", choices=list(PRESETS), help="start from a fresh tiny Molmo2 of this preset"
    )
    ft.add_argument(
        "--out", required=True, help="run folder: checkpoints, history, curve, final/; rerun to resume"
    )
    ft.add_argument(
        "--data",
        action="append",
        help="source[:arg][=weight], repeatable: synthetic_gui[:click|icon|multi|any], tabletop[:maxN], "
        "shapes[:maxN], pixmo:FILE.jsonl, android_control:DIR (default synthetic_gui:icon)",
    )
    ft.add_argument("--steps", type=at_least(1), default=1000, help="optimiser steps")
    ft.add_argument("--batch-size", type=at_least(1), default=16, help="examples per micro-batch")
    ft.add_argument("--grad-accum", type=at_least(1), default=1, help="micro-batches per optimiser step")
    ft.add_argument("--lr", type=above(0), default=1e-3, help="peak learning rate")
    ft.add_argument("--warmup", type=at_least(0), default=100, help="linear warm-up steps")
    ft.add_argument(
        "--decay-fraction", type=above(0), default=1.0, help="share of the run the lr decays over (1: cosine)"
    )
    ft.add_argument("--weight-decay", type=at_least(0, float), default=0.0, help="AdamW weight decay")
    ft.add_argument("--lora-rank", type=at_least(0), default=0, help="> 0: LoRA of this rank (large models)")
    ft.add_argument(
        "--device", type=device, default=None, help=f"{DEVICE_HELP} (default: cuda if available; bf16 there)"
    )
    ft.add_argument("--no-bf16", action="store_true", help="train in float32 on CUDA too (no bf16 autocast)")
    ft.add_argument(
        "--eval-every", type=at_least(0), default=500, help="steps between held-out evaluations (0: off)"
    )
    ft.add_argument("--eval-seeds", type=at_least(1), default=32, help="held-out screens per evaluation")
    ft.add_argument("--save-every", type=at_least(1), default=500, help="steps between checkpoints")
    ft.add_argument("--workers", type=at_least(0), default=0, help="data loader processes")
    ft.add_argument("--seed", type=at_least(0), default=0, help="data and initialisation seed")
    ft.add_argument("--time-budget-min", type=above(0), default=None, help="stop (and anneal the lr) by then")
    ft.add_argument(
        "--cpu-threads", type=at_least(1), default=None, help="torch CPU threads (default: torch's)"
    )
    ft.add_argument("--no-progress", action="store_true", help="no progress bar")


def _demo(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--out", default="molmo-agent-demo", help="report folder (index.html, summary.json)")
    demo.add_argument("--gui-episodes", type=at_least(0), default=10, help="SyntheticGui episodes (0: skip)")
    demo.add_argument(
        "--tabletop-scenes", type=at_least(0), default=10, help="TabletopPointing scenes (0: skip)"
    )
    demo.add_argument("--seed", type=at_least(0), default=0, help="first held-out seed")
    demo.add_argument(
        "--model", default=None, help="Hub id, folder, grpc:// or openai:// (default: the embedded model)"
    )
    demo.add_argument(
        "--device", type=device, default=None, help=f"{DEVICE_HELP} (default: cuda if available)"
    )
    add_quantize_arg(demo)
