"""``molmo-agent`` command line. The only module that prints to the user.

Sub-commands are registered in one table (:data:`COMMANDS`); each handler takes the parsed arguments and
returns an exit code. Errors the user can fix (bad image, missing weights, empty query) are printed as one
line starting with ``error:`` and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .backends.tiny_molmo2 import PRESETS
from .errors import MolmoAgentError

SAMPLE_IMAGE = Path(__file__).resolve().parent / "assets" / "sample.png"


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="Hub id, local folder, grpc:// or openai:// URL (default: the embedded model)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: bf16 on cuda)")
    parser.add_argument("--cpu-threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def cmd_point(args: argparse.Namespace) -> int:
    from .annotate import draw_points
    from .images import load_image
    from .model import load_model

    image_path = _image_argument(args.image)
    model = load_model(args.model, device=args.device, dtype=args.dtype, cpu_threads=args.cpu_threads)
    image = load_image(image_path)
    result = model.point_detailed(image, args.query, all_occurrences=args.all)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        draw_points(image, result.points).save(out)
    report = {
        "model": model.info.model_id,
        "image": str(image_path),
        "image_size": list(image.size),
        "query": args.query,
        "points": [p.to_dict() for p in result.points],
        "text": result.text,
        "reason": result.reason,
        "timings_ms": {
            "decode": round(result.timings.decode_ms, 2),
            "preprocess": round(result.timings.preprocess_ms, 2),
            "model": round(result.timings.model_ms, 2),
            "parse": round(result.timings.parse_ms, 2),
        },
        "annotated": str(args.out) if args.out else None,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_points(report)
    return 0


def _image_argument(value: str) -> Path:
    """A path, or the word ``sample`` for the image bundled with the package."""
    path = Path(value)
    if value == "sample" and not path.exists():
        return SAMPLE_IMAGE
    return path


def _print_points(report: dict) -> None:
    print(f"model: {report['model']}   image: {report['image']} {tuple(report['image_size'])}")
    print(f"query: {report['query']}")
    if report["points"]:
        for p in report["points"]:
            print(
                f"  point {p['object_id']}: x={p['x']:.1f} y={p['y']:.1f} px  "
                f"(x_norm={p['x_norm']:.3f}, y_norm={p['y_norm']:.3f})  label={p['label']!r}"
            )
    else:
        print(f"  no points: {report['reason']}")
    print(f"model answer: {report['text']!r}")
    if report["annotated"]:
        print(f"annotated image: {report['annotated']}")


def cmd_models(args: argparse.Namespace) -> int:
    from .backends.registry import KNOWN_MODELS, is_available_locally

    rows = [("model", "family", "parameters", "local", "loads with")]
    for model in KNOWN_MODELS.values():
        local = "yes" if is_available_locally(model.model_id) else "no"
        rows.append((model.model_id, model.family, model.parameters, local, model.loads_with))
    if args.json:
        print(json.dumps([dict(zip(rows[0], row, strict=True)) for row in rows[1:]], indent=2))
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "agent":
        from .bench_agent import run_agent_bench

        results = run_agent_bench(
            steps=args.runs or 20, preset=args.preset, model=args.model, cpu_threads=args.cpu_threads
        )
    elif args.what == "gpu":
        from .bench_gpu import run_gpu_bench

        results = run_gpu_bench(
            size=args.size, device=args.device, runs=args.runs or 3, budget_s=args.budget_s, out=args.out
        )
    elif args.what == "serve":
        from .bench_serve import run_serve_bench

        results = run_serve_bench(
            runs=args.runs or 30, seconds=args.seconds, preset=args.preset, cpu_threads=args.cpu_threads or 1
        )
    else:
        from .bench import run_point_bench

        results = run_point_bench(
            model=args.model,
            preset=args.preset,
            runs=args.runs or 7,
            budget=args.budget,
            device=args.device,
            dtype=args.dtype,
            cpu_threads=args.cpu_threads,
        )
    print(json.dumps(results, indent=2) if args.json else results["table"])
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from .server.app import serve
    from .server.config import ConfigError, ServerConfig, read_token

    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            model=args.model,
            device=args.device,
            dtype=args.dtype,
            cpu_threads=args.cpu_threads,
            max_batch_size=args.max_batch_size,
            max_batch_wait_ms=args.max_batch_wait_ms,
            max_queue=args.max_queue,
            max_message_bytes=int(args.max_message_mb * 1024 * 1024),
            max_image_pixels=args.max_image_pixels,
            max_new_tokens=args.max_new_tokens,
            token=read_token(args.token_file, args.token_env),
            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
            tls_key=Path(args.tls_key) if args.tls_key else None,
            tls_client_ca=Path(args.tls_client_ca) if args.tls_client_ca else None,
            insecure=args.insecure,
            grace_s=args.grace,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("molmo_agent").setLevel(logging.INFO)
    print(f"molmo-agent serving on {config.address} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    asyncio.run(serve(config))
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    import time as _time

    from .actions import ActionType
    from .agent import ActionPolicy, AgentConfig, ConfirmingExecutor, DryRunExecutor, PointPolicy, run_agent
    from .agent.record import TrajectoryRecorder
    from .images import load_image
    from .model import load_model

    allowed = frozenset(ActionType(name.strip()) for name in args.allow.split(",")) if args.allow else None
    config = AgentConfig(max_steps=args.max_steps, max_seconds=args.max_seconds, allowed_actions=allowed)
    model = load_model(args.model, device=args.device, dtype=args.dtype, cpu_threads=args.cpu_threads)
    policy = (ActionPolicy if args.policy == "action" else PointPolicy)(model, steps=args.step or None)
    if args.screenshot:
        executor = DryRunExecutor(load_image(_image_argument(args.screenshot)))
    else:
        from .agent.executors.desktop import DesktopConfig, DesktopExecutor

        desktop = DesktopExecutor(DesktopConfig(settle_s=args.settle))
        executor = DryRunExecutor(desktop) if args.dry_run else desktop
    if args.confirm:
        executor = ConfirmingExecutor(executor)
    folder = Path(args.record or Path("molmo-agent-runs") / _time.strftime("%Y%m%d-%H%M%S"))
    with executor, TrajectoryRecorder(folder, goal=args.goal) as recorder:
        result = run_agent(args.goal, policy, executor, config, callbacks=[recorder, _print_step])
        recorder.close(result)
    print(f"stopped: {result.stop_reason} after {len(result.steps)} step(s); record: {folder / 'index.html'}")
    return 0


def _print_step(step) -> None:
    action = step.action.to_json() if step.action else "-"
    outcome = step.outcome.note if step.outcome else ""
    print(f"step {step.index}: {action} {('ERROR ' + step.error) if step.error else outcome}".rstrip())


def cmd_eval(args: argparse.Namespace) -> int:
    """Ctrl-C ends the run cleanly: finished episodes are on disk and the same command resumes."""
    try:
        return _eval(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _eval(args: argparse.Namespace) -> int:
    from .evaluation import EvalConfig, run_eval
    from .model import load_model

    env_kwargs = {}
    for item in args.env_arg or []:
        key, _, value = item.partition("=")
        env_kwargs[key] = _literal(value)
    if args.data_dir:
        env_kwargs["data_dir"] = args.data_dir
    if args.task_level:
        env_kwargs["task_level"] = args.task_level
    config = EvalConfig(
        env_id=args.env_id,
        out_dir=Path(args.out or Path("molmo-agent-evals") / args.env_id.replace("/", "_")),
        episodes=args.episodes,
        protocol=args.protocol,
        policy=args.policy,
        seed=args.seed,
        env_kwargs=env_kwargs,
        concurrency=args.concurrency,
        max_new_tokens=args.max_new_tokens,
        max_episode_steps=args.max_episode_steps,
        screens=args.screens,
    )
    model = load_model(args.model, device=args.device, dtype=args.dtype, cpu_threads=args.cpu_threads)
    summary = run_eval(config, model, progress=not args.no_progress, force=args.force)
    print(f"{summary['headline']}; settings: {summary['settings']}; report: {config.out_dir / 'report.html'}")
    return 0


def _episodes(value: str) -> int | str:
    """``--episodes``: a positive number, or ``all`` (every episode of a dataset-replaying env)."""
    if value == "all":
        return value
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 episode, got {number}")
    return number


def _literal(value: str):
    """``--env-arg`` values: JSON when they parse (numbers, lists, true/false), else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def cmd_build_tiny(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .backends.tiny_molmo2 import PRESETS, build_tiny_molmo2

    spec = replace(PRESETS[args.preset], seed=args.seed)
    out = build_tiny_molmo2(args.out, spec)
    size_kb = sum(f.stat().st_size for f in out.iterdir()) / 1024
    print(f"wrote {args.preset} Molmo2 checkpoint to {out} ({size_kb:.0f} KiB); load it with --model {out}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .training import FinetuneConfig, finetune

    if not args.model and not args.init_preset:
        print(
            "error: give --model (a Molmo2 Hub id or folder) or --init-preset (train from scratch)",
            file=sys.stderr,
        )
        return 2
    config = FinetuneConfig(
        model=args.model or "",
        init_preset=args.init_preset,
        out_dir=Path(args.out),
        data=tuple(args.data or ["synthetic_gui:icon"]),
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        warmup_steps=args.warmup,
        decay_fraction=args.decay_fraction,
        weight_decay=args.weight_decay,
        vision_lr_scale=args.vision_lr_scale,
        attend_weight=args.attend_weight,
        place_weight=args.place_weight,
        place_code=args.place_code,
        place_layer=args.place_layer,
        attend_axis_heads=args.attend_axis_heads,
        lora_rank=args.lora_rank,
        device=args.device,
        bf16=False if args.no_bf16 else None,
        eval_every=args.eval_every,
        eval_seeds=args.eval_seeds,
        save_every=args.save_every,
        workers=args.workers,
        reuse=args.reuse,
        seed=args.seed,
        time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
        progress=not args.no_progress,
    )
    if args.cpu_threads:
        from .backends.torch_setup import set_cpu_threads

        set_cpu_threads(args.cpu_threads)
    final = finetune(config)
    curve = config.out_dir / "learning_curve.png"
    print(f"trained checkpoint: {final} (load it with --model {final}); learning curve: {curve}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(
        model_name=args.model,
        out_dir=Path(args.out),
        gui_episodes=args.gui_episodes,
        tabletop_scenes=args.tabletop_scenes,
        device=args.device,
        seed=args.seed,
    )
    for line in summary["lines"]:
        print(line)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="molmo-agent", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    point = sub.add_parser("point", help="point to an object in an image")
    point.add_argument("image", help="image file, or 'sample' for the bundled sample image")
    point.add_argument("query", help="what to point at, e.g. 'the red mug'")
    point.add_argument("--all", action="store_true", help="ask for every occurrence")
    point.add_argument("--json", action="store_true", help="print the result as JSON")
    point.add_argument("--out", help="write the image with the points drawn to this PNG")
    _add_model_args(point)

    models = sub.add_parser("models", help="list known models and whether they are on this machine")
    models.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="latency breakdown of model.point (or, with 'serve', of the server)")
    bench.add_argument("what", nargs="?", default="point", choices=["point", "serve", "agent", "gpu"])
    bench.add_argument("--size", default=None, help="gpu: 8b, medium or tiny (default 8b on cuda, else tiny)")
    bench.add_argument("--budget-s", type=float, default=420.0, help="gpu: skip phases past this many s")
    bench.add_argument("--seconds", type=float, default=6.0, help="serve: seconds per throughput point")
    bench.add_argument(
        "--preset", default="tiny", help="tiny checkpoint size to build when --model is absent"
    )
    bench.add_argument(
        "--runs", type=int, default=None, help="timed runs (default 7; serve: 30; agent: 20 steps)"
    )
    bench.add_argument(
        "--budget", type=int, default=64, help="fixed token budget to compare stopping against"
    )
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--out", help="also write the results as JSON here")
    _add_model_args(bench)

    serve = sub.add_parser("serve", help="serve the model over gRPC (molmo_agent.v1.MolmoAgent)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    serve.add_argument("--port", type=int, default=50051)
    serve.add_argument("--max-batch-size", type=int, default=8)
    serve.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    serve.add_argument("--max-queue", type=int, default=64, help="waiting requests before RESOURCE_EXHAUSTED")
    serve.add_argument("--max-message-mb", type=float, default=64.0)
    serve.add_argument("--max-image-pixels", type=int, default=50_000_000)
    serve.add_argument("--max-new-tokens", type=int, default=512)
    serve.add_argument("--token-file", help="file whose first line is the bearer token")
    serve.add_argument("--token-env", default="MOLMO_AGENT_TOKEN", help="environment variable with the token")
    serve.add_argument("--tls-cert", help="PEM certificate chain (enables TLS)")
    serve.add_argument("--tls-key", help="PEM private key")
    serve.add_argument("--tls-client-ca", help="PEM CA that client certificates must chain to (mutual TLS)")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without a token")
    serve.add_argument(
        "--grace", type=float, default=10.0, help="seconds to finish in-flight requests on stop"
    )
    _add_model_args(serve)

    gui = sub.add_parser("gui", help="drive the desktop (or dry-run a screenshot) towards a goal")
    gui.add_argument("goal", help="e.g. 'click the Save button' or 'Turn on Wi-Fi' (with --policy action)")
    gui.add_argument(
        "--policy",
        choices=["action", "point"],
        default="point",
        help="point: ground each instruction by pointing (any Molmo); action: Molmo's action format",
    )
    gui.add_argument("--step", action="append", help="low-level step instruction (repeatable, one per step)")
    gui.add_argument("--dry-run", action="store_true", help="observe and record, never touch the screen")
    gui.add_argument("--confirm", action="store_true", help="ask before each action")
    gui.add_argument("--max-steps", type=int, default=10)
    gui.add_argument("--max-seconds", type=float, default=300.0)
    gui.add_argument("--allow", help="comma-separated action types that may run (default: all)")
    gui.add_argument("--record", help="folder for the trajectory (default: molmo-agent-runs/<time>)")
    gui.add_argument("--screenshot", help="dry-run on this image instead of the screen (no display needed)")
    gui.add_argument("--settle", type=float, default=0.3, help="seconds to wait after each action")
    _add_model_args(gui)

    evaluate = sub.add_parser("eval", help="evaluate a model on a molmo_envs environment")
    evaluate.add_argument("env_id", help="e.g. molmo_agent/AndroidControl-v0, molmo_agent/SyntheticGui-v0")
    evaluate.add_argument(
        "--episodes", type=_episodes, default=20, help="a number, or 'all' for a dataset env (AndroidControl)"
    )
    evaluate.add_argument(
        "--protocol", choices=["molmo", "distance14"], help="AndroidControl scoring protocol"
    )
    evaluate.add_argument("--policy", choices=["auto", "action", "point"], default="auto")
    evaluate.add_argument("--data-dir", help="AndroidControl: folder with the TFRecord shards and splits")
    evaluate.add_argument("--task-level", choices=["low", "high"], help="AndroidControl task level")
    evaluate.add_argument("--env-arg", action="append", help="extra env keyword, KEY=VALUE (repeatable)")
    evaluate.add_argument("--seed", type=int, default=0, help="episode e resets with seed SEED + e")
    evaluate.add_argument(
        "--max-new-tokens",
        type=int,
        help="action answer budget (default: 16 for AndroidControl's molmo protocol, as Molmo's own "
        "evaluation, else 96)",
    )
    evaluate.add_argument(
        "--max-episode-steps",
        type=int,
        help="override the env's step limit (1: only the first action counts)",
    )
    evaluate.add_argument(
        "--force",
        action="store_true",
        help="start the output folder over when it holds another configuration",
    )
    evaluate.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="episodes in parallel (with a grpc:// or openai:// model: server or engine batching)",
    )
    evaluate.add_argument(
        "--screens",
        choices=["failures", "all", "none"],
        default="failures",
        help="which steps' screenshots the folder keeps (default: failures, what the report shows)",
    )
    evaluate.add_argument("--out", help="output folder (default: molmo-agent-evals/<env>); rerun to resume")
    evaluate.add_argument("--no-progress", action="store_true")
    _add_model_args(evaluate)

    ft = sub.add_parser("finetune", help="fine-tune a Molmo2 checkpoint on pointing/action data")
    ft.add_argument("--model", help="Molmo2 Hub id or local folder to start from")
    ft.add_argument("--init-preset", help="start from a fresh tiny Molmo2 of this preset (e.g. pointer)")
    ft.add_argument("--out", required=True, help="run folder: checkpoints, history, curve, final/")
    ft.add_argument(
        "--data",
        action="append",
        help="source[:arg][=weight], repeatable: synthetic_gui[:click|icon|multi|any], tabletop[:maxN], "
        "shapes[:maxN], "
        "pixmo:FILE.jsonl, android_control:DIR (default synthetic_gui:icon)",
    )
    ft.add_argument("--steps", type=int, default=1000)
    ft.add_argument("--batch-size", type=int, default=16)
    ft.add_argument("--grad-accum", type=int, default=1)
    ft.add_argument("--lr", type=float, default=1e-3)
    ft.add_argument("--warmup", type=int, default=100)
    ft.add_argument(
        "--decay-fraction", type=float, default=1.0, help="share of the run the lr decays over (1: cosine)"
    )
    ft.add_argument("--weight-decay", type=float, default=0.0)
    ft.add_argument(
        "--vision-lr-scale",
        type=float,
        default=1.0,
        help="lr multiplier for the ViT and image adapter (e.g. 0.1 when training a tiny model from scratch)",
    )
    ft.add_argument(
        "--attend-weight",
        type=float,
        default=0.0,
        help="weight of a loss teaching attention at coordinate digits to look at the answer's point "
        "(e.g. 1 when training a tiny model from scratch; 0: off)",
    )
    ft.add_argument(
        "--place-weight",
        type=float,
        default=0.0,
        help="weight of a loss making each whole-image token's features say where it is (a fixed sine-cosine "
        "read-out; e.g. 1 when training a tiny model from scratch; 0: off)",
    )
    ft.add_argument(
        "--attend-axis-heads",
        action="store_true",
        help="with --attend-weight: teach head 0 to look at the point at x coordinates and head 1 at y "
        "(default: head 0 at both)",
    )
    ft.add_argument(
        "--place-code",
        default="sincos",
        help="the code --place-weight teaches: sincos (1 and 3 cycles per image), or value (the output "
        "head's own code of a coordinate token; pointer-numbers presets)",
    )
    ft.add_argument(
        "--place-layer",
        type=int,
        default=0,
        help="where --place-weight reads the tokens: 0 the image features (whole-image view), K >= 1 the "
        "output of language-model layer K (every image token, high-resolution crops too)",
    )
    ft.add_argument("--lora-rank", type=int, default=0, help="> 0: LoRA of this rank (large models)")
    ft.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available; bf16 there)")
    ft.add_argument("--no-bf16", action="store_true", help="train in float32 on CUDA too (no bf16 autocast)")
    ft.add_argument("--eval-every", type=int, default=500, help="steps between held-out evaluations (0: off)")
    ft.add_argument("--eval-seeds", type=int, default=32)
    ft.add_argument("--save-every", type=int, default=500)
    ft.add_argument("--workers", type=int, default=0, help="data loader processes")
    ft.add_argument(
        "--reuse", type=int, default=1, help="train on each generated batch this many times (data-bound GPUs)"
    )
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--time-budget-min", type=float, default=None, help="stop (and anneal the lr) by then")
    ft.add_argument("--cpu-threads", type=int, default=None)
    ft.add_argument("--no-progress", action="store_true")

    demo = sub.add_parser("demo", help="the default model driving SyntheticGui and TabletopPointing, offline")
    demo.add_argument("--out", default="molmo-agent-demo", help="report folder (index.html, summary.json)")
    demo.add_argument("--gui-episodes", type=int, default=10)
    demo.add_argument("--tabletop-scenes", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0, help="first held-out seed")
    demo.add_argument(
        "--model", default=None, help="Hub id, folder, grpc:// or openai:// (default: the embedded model)"
    )
    demo.add_argument("--device", default=None)

    tiny = sub.add_parser("build-tiny", help="write a tiny random Molmo2 checkpoint (tests, benchmarks)")
    tiny.add_argument("out", help="output folder")
    tiny.add_argument(
        "--preset",
        default="tiny",
        choices=list(PRESETS),
    )
    tiny.add_argument("--seed", type=int, default=0)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "point": cmd_point,
    "models": cmd_models,
    "bench": cmd_bench,
    "serve": cmd_serve,
    "gui": cmd_gui,
    "eval": cmd_eval,
    "build-tiny": cmd_build_tiny,
    "finetune": cmd_finetune,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    if not args.verbose:
        _quiet_transformers()
    try:
        return COMMANDS[args.command](args)
    except MolmoAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _quiet_transformers() -> None:
    """Progress bars and load reports from transformers are noise on a CLI's stdout/stderr."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


if __name__ == "__main__":
    sys.exit(main())
