"""``molmo-agent`` command line. The only module that prints to the user.

Sub-commands are registered in one table (:data:`COMMANDS`); the argument table is
:mod:`molmo_agent.cli_parser`. Before a verb runs, its check (:data:`CHECKS`) validates what the arguments
name on this machine (files, folders, devices, env ids, models), so a mistake is found before a model loads.

Exit status: 0 ok; 1 the command failed while running; 2 a usage error, which the user fixes by changing
the command line (bad value, missing file, unknown model or env, unwritable output); 130 interrupted
(Ctrl-C). Every error is one line, ``molmo-agent: error: ...``; ``-v`` (anywhere on the line) adds the
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from . import cli_checks as checks
from .cli_checks import UsageError
from .cli_parser import build_parser
from .errors import ActionValidationError, ImageInputError, ModelNotFoundError, MolmoAgentError, QueryError

SAMPLE_IMAGE = Path(__file__).resolve().parent / "assets" / "sample.png"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_build_parser = build_parser  # the name tests and older scripts import


def _load_model(args: argparse.Namespace):
    """The model a verb's ``--model/--device/--dtype/--cpu-threads/--quantize`` name (loaded lazily)."""
    from .model import load_model

    return load_model(
        args.model, device=args.device, dtype=args.dtype, cpu_threads=args.cpu_threads, quantize=args.quantize
    )


def _check_model_args(args: argparse.Namespace) -> None:
    """Device and dtype against this machine, then the model (fast failure offline); remote models skip
    the device check, their server picks its own."""
    remote = str(args.model or "").startswith(("grpc", "openai"))
    if not remote:
        checks.check_device(args.device, getattr(args, "dtype", None))
    checks.check_quantize(args.quantize, args.model, args.device, getattr(args, "dtype", None))
    checks.check_model(args.model)


def check_point(args: argparse.Namespace) -> None:
    if not (args.image == "sample" and not Path(args.image).exists()):
        checks.check_existing(args.image, "image")
    if args.out:
        checks.check_writable_file(args.out, "--out", IMAGE_SUFFIXES)
    _check_model_args(args)


def cmd_point(args: argparse.Namespace) -> int:
    from .annotate import draw_points
    from .images import load_image

    image_path = _image_argument(args.image)
    model = _load_model(args)
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


def check_bench(args: argparse.Namespace) -> None:
    if args.out:
        checks.check_writable_file(args.out, "--out")
    _check_model_args(args)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "agent":
        from .bench.agent import run_agent_bench

        results = run_agent_bench(
            steps=args.runs or 20,
            preset=args.preset,
            model=args.model,
            cpu_threads=args.cpu_threads,
            quantize=args.quantize,
        )
    elif args.what == "gpu":
        from .bench.gpu import run_gpu_bench

        results = run_gpu_bench(
            size=args.size,
            device=args.device,
            runs=args.runs or 3,
            budget_s=args.budget_s,
            out=args.out,
            quantize=(args.quantize,) if args.quantize else ("int8", "int4"),
        )
    elif args.what == "serve":
        from .bench.serve import run_serve_bench

        results = run_serve_bench(
            runs=args.runs or 30, seconds=args.seconds, preset=args.preset, cpu_threads=args.cpu_threads or 1
        )
    else:
        from .bench.point import run_point_bench

        results = run_point_bench(
            model=args.model,
            preset=args.preset,
            runs=args.runs or 7,
            budget=args.budget,
            device=args.device,
            dtype=args.dtype,
            cpu_threads=args.cpu_threads,
            quantize=args.quantize,
        )
    print(json.dumps(results, indent=2) if args.json else results["table"])
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def check_serve(args: argparse.Namespace) -> None:
    for flag in ("tls_cert", "tls_key", "tls_client_ca", "token_file"):
        if getattr(args, flag):
            checks.check_existing(getattr(args, flag), "--" + flag.replace("_", "-"))
    _check_model_args(args)


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
            quantize=args.quantize,
            max_batch_size=args.max_batch_size,
            max_batch_wait_ms=args.max_batch_wait_ms,
            max_queue=args.max_queue,
            max_message_bytes=int(args.max_message_mb * 1024 * 1024),
            max_image_pixels=args.max_image_pixels,
            max_new_tokens=args.max_new_tokens,
            max_request_pixels=args.max_request_pixels,
            max_text_tokens=args.max_text_tokens,
            token=read_token(args.token_file, args.token_env),
            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
            tls_key=Path(args.tls_key) if args.tls_key else None,
            tls_client_ca=Path(args.tls_client_ca) if args.tls_client_ca else None,
            insecure=args.insecure,
            grace_s=args.grace,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    logging.getLogger("molmo_agent").setLevel(logging.INFO)
    # "serving" is logged once the port is bound and the model answers (grpc health says SERVING then)
    print(f"molmo-agent: starting on {config.address}, loading the model (Ctrl-C to stop)", file=sys.stderr)
    asyncio.run(serve(config))
    return 0


def check_gui(args: argparse.Namespace) -> None:
    if args.screenshot:
        if args.region or args.window:
            raise UsageError(
                "--region and --window choose part of the screen; with --screenshot crop the image"
            )
        if not (args.screenshot == "sample" and not Path(args.screenshot).exists()):
            checks.check_existing(args.screenshot, "--screenshot")
    if args.confirm and not sys.stdin.isatty():
        raise UsageError("--confirm asks before each action on a terminal, and standard input is not one")
    if args.record:
        checks.check_writable_dir(args.record, "--record")
    else:
        checks.check_writable_dir("molmo-agent-runs", "the trajectory folder (set one with --record)")
    _check_model_args(args)


def cmd_gui(args: argparse.Namespace) -> int:
    """The screen is opened before the model loads, so a missing display or window fails at once."""
    import time as _time

    from .agent import ActionPolicy, AgentConfig, ConfirmingExecutor, PointPolicy, run_agent
    from .agent.record import TrajectoryRecorder

    config = AgentConfig(max_steps=args.max_steps, max_seconds=args.max_seconds, allowed_actions=args.allow)
    executor = _gui_executor(args)
    if args.confirm:
        executor = ConfirmingExecutor(executor)
    folder = Path(args.record or Path("molmo-agent-runs") / _time.strftime("%Y%m%d-%H%M%S"))
    with executor:
        model = _load_model(args)
        policy = (ActionPolicy if args.policy == "action" else PointPolicy)(model, steps=args.step or None)
        with TrajectoryRecorder(folder, goal=args.goal) as recorder:
            result = run_agent(args.goal, policy, executor, config, callbacks=[recorder, _print_step])
            recorder.close(result)
    print(f"stopped: {result.stop_reason} after {len(result.steps)} step(s); record: {folder / 'index.html'}")
    return 0


def _gui_executor(args: argparse.Namespace):
    """A dry run on a given image, or the desktop (the whole monitor, a region or a window)."""
    from .agent import DryRunExecutor
    from .images import load_image

    if args.screenshot:
        return DryRunExecutor(load_image(_image_argument(args.screenshot)))
    from .agent.executors.desktop import DesktopConfig, DesktopExecutor

    desktop = DesktopExecutor(DesktopConfig(settle_s=args.settle, region=args.region, window=args.window))
    return DryRunExecutor(desktop) if args.dry_run else desktop


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
        return EXIT_INTERRUPTED


def check_eval(args: argparse.Namespace) -> None:
    """The env id, its arguments and the folders, then a config; the env is built once to test its
    arguments unless it replays a dataset (indexing one can take minutes: the run does it)."""
    from .evaluation import EvalConfig
    from .evaluation.harness import make_env

    env_id = checks.check_env_id(args.env_id)
    env_kwargs = {key: _literal(value) for key, value in args.env_arg or []}
    flags = {}
    for flag, key in (("--data-dir", "data_dir"), ("--task-level", "task_level"), ("--protocol", "protocol")):
        value = getattr(args, key)
        if value:
            env_kwargs[key], flags[key] = value, f"{flag} {value}"
    checks.check_env_kwargs(env_id, env_kwargs, flags)
    env_kwargs.pop("protocol", None)  # the config carries it
    if args.data_dir:
        checks.check_existing(args.data_dir, "--data-dir", folder=True)
    out = Path(args.out or Path("molmo-agent-evals") / env_id.replace("/", "_"))
    checks.check_writable_dir(out, "--out")
    try:
        config = EvalConfig(
            env_id=env_id,
            out_dir=out,
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
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if "data_dir" not in checks.env_parameters(env_id):
        try:
            make_env(config).close()
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{env_id} does not accept these arguments: {exc}") from exc
    args.eval_config = config
    _check_model_args(args)


def _eval(args: argparse.Namespace) -> int:
    from .evaluation import run_eval

    config = args.eval_config
    model = _load_model(args)
    summary = run_eval(config, model, progress=not args.no_progress, force=args.force)
    print(f"{summary['headline']}; settings: {summary['settings']}; report: {config.out_dir / 'report.html'}")
    return 0


def _literal(value: str):
    """``--env-arg`` values: JSON when they parse (numbers, lists, true/false), else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def check_build_tiny(args: argparse.Namespace) -> None:
    checks.check_writable_dir(args.out, "the output folder")


def cmd_build_tiny(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .training.tiny_molmo2 import PRESETS, build_tiny_molmo2

    spec = replace(PRESETS[args.preset], seed=args.seed)
    out = build_tiny_molmo2(args.out, spec)
    size_kb = sum(f.stat().st_size for f in out.iterdir()) / 1024
    print(f"wrote {args.preset} Molmo2 checkpoint to {out} ({size_kb:.0f} KiB); load it with --model {out}")
    return 0


def check_finetune(args: argparse.Namespace) -> None:
    """Settings, data sources and their files, the device and the starting model, before any training."""
    from .training import FinetuneConfig
    from .training.trainer import FinetuneError, latest_checkpoint

    if not args.model and not args.init_preset:
        raise UsageError("give --model (a Molmo2 Hub id or folder) or --init-preset (train from scratch)")
    out = checks.check_writable_dir(args.out, "--out")
    data = tuple(args.data or ["synthetic_gui:icon"])
    for spec in data:
        _check_data_source(spec)
    make_objective = getattr(args, "make_objective", None)  # set by a recipe's own parser
    try:
        args.finetune_config = FinetuneConfig(**_finetune_settings(args, out, data))
        args.objective = make_objective(args) if make_objective else None
    except FinetuneError as exc:
        raise UsageError(str(exc)) from exc
    checks.check_device(args.device, None)
    resuming = out.is_dir() and latest_checkpoint(out) is not None and args.lora_rank == 0
    if args.model and not args.init_preset and not resuming:
        checks.check_model(args.model)


def _check_data_source(spec: str) -> None:
    from .training.batches import SourceSpec
    from .training.examples import DataError

    try:
        source = SourceSpec.parse(spec)
    except DataError as exc:
        raise UsageError(f"--data {spec}: {exc}") from exc
    if source.name == "pixmo":
        checks.check_existing(source.argument or "", f"--data {spec}: the JSONL file")
    elif source.name == "android_control":
        checks.check_existing(source.argument or "", f"--data {spec}: the AndroidControl folder", folder=True)


def _finetune_settings(args: argparse.Namespace, out: Path, data: tuple[str, ...]) -> dict:
    return dict(
        model=args.model or "",
        init_preset=args.init_preset,
        out_dir=out,
        data=data,
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        warmup_steps=args.warmup,
        decay_fraction=args.decay_fraction,
        weight_decay=args.weight_decay,
        lora_rank=args.lora_rank,
        device=args.device,
        bf16=False if args.no_bf16 else None,
        eval_every=args.eval_every,
        eval_seeds=args.eval_seeds,
        save_every=args.save_every,
        workers=args.workers,
        seed=args.seed,
        time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
        progress=not args.no_progress,
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    """Ctrl-C keeps the checkpoints written so far; the same command resumes from the latest."""
    from .training import finetune
    from .training.trainer import latest_checkpoint

    config = args.finetune_config
    if args.cpu_threads:
        from .backends.torch_setup import set_cpu_threads

        set_cpu_threads(args.cpu_threads)
    try:
        final = finetune(config, args.objective)
    except KeyboardInterrupt:
        last = latest_checkpoint(config.out_dir) if config.out_dir.is_dir() else None
        where = (
            f"from {last}" if last else f"(no checkpoint yet: one is saved every {config.save_every} steps)"
        )
        print(f"interrupted; rerun the same command to resume {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    curve = config.out_dir / "learning_curve.png"
    print(f"trained checkpoint: {final} (load it with --model {final}); learning curve: {curve}")
    return 0


def check_demo(args: argparse.Namespace) -> None:
    if args.gui_episodes == 0 and args.tabletop_scenes == 0:
        raise UsageError("nothing to run: --gui-episodes and --tabletop-scenes are both 0")
    checks.check_writable_dir(args.out, "--out")
    checks.check_device(args.device, None)
    checks.check_quantize(args.quantize, args.model, args.device, None)
    checks.check_model(args.model)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(
        model_name=args.model,
        out_dir=Path(args.out),
        gui_episodes=args.gui_episodes,
        tabletop_scenes=args.tabletop_scenes,
        device=args.device,
        seed=args.seed,
        quantize=args.quantize,
    )
    for line in summary["lines"]:
        print(line)
    return 0


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


CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "point": check_point,
    "bench": check_bench,
    "serve": check_serve,
    "gui": check_gui,
    "eval": check_eval,
    "build-tiny": check_build_tiny,
    "finetune": check_finetune,
    "demo": check_demo,
}
"""Each verb's up-front check: raises :class:`UsageError` (or a model error) before anything starts."""

USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ImageInputError,
    QueryError,
    ModelNotFoundError,
    ActionValidationError,
)
USAGE_ERROR_NAMES = {"RunMismatchError", "DataError", "ConfigError"}
"""Raised by modules the CLI imports only when a verb needs them: matched by name to keep startup light."""


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run one command; returns its exit status (0 ok, 1 failure, 2 usage, 130 interrupted). ``parser``:
    another argument table whose namespaces name one of :data:`COMMANDS` (a training recipe's own entry,
    ``molmo_agent.training.pointer_recipe``), run with the same checks, logging and exit codes."""
    try:
        args = (parser or build_parser()).parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's usage errors (already printed)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    if not args.verbose:
        _quiet_transformers()
    try:
        check = CHECKS.get(args.command)
        if check is not None:
            check(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("molmo-agent: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _report(exc, verbose=args.verbose)


def _report(exc: Exception, *, verbose: bool) -> int:
    """One line for the user; the traceback only with ``-v``. Usage errors exit 2, the rest 1."""
    usage = isinstance(exc, USAGE_ERRORS) or any(c.__name__ in USAGE_ERROR_NAMES for c in type(exc).__mro__)
    if verbose:
        traceback.print_exc()
    message = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, MolmoAgentError | OSError) and not usage:
        message = f"{type(exc).__name__}: {message}" + (
            "" if verbose else " (rerun with -v for the traceback)"
        )
    print(f"molmo-agent: error: {message}", file=sys.stderr)
    return EXIT_USAGE if usage else EXIT_FAILURE


def _quiet_transformers() -> None:
    """Progress bars and load reports from transformers are noise on a CLI's stdout/stderr."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


if __name__ == "__main__":
    sys.exit(main())
