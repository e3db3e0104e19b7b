"""The command line's answer to mistakes: one line, the right exit status, never a traceback without -v.

A table of command lines a new user might type (issue 31) -> exit status and a fragment of the message.
Everything here fails in the up-front checks, before a model loads, so the table is cheap to run.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from molmo_agent import __version__
from molmo_agent.cli import main

SG, AC = "molmo_agent/SyntheticGui-v0", "molmo_agent/AndroidControl-v0"
OFFLINE_HUB_ID = "allenai/Molmo2-4B"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder with an empty Hub cache, offline; stdin is a pipe (not a terminal)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    (tmp_path / "a_file").write_text("x")
    return tmp_path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


CASES = [
    # device and dtype
    (["point", "sample", "mug", "--device", "tpu"], 2, "unknown device 'tpu'"),
    (["point", "sample", "mug", "--dtype", "float64"], 2, "invalid choice: 'float64'"),
    (["serve", "--device", "gpu0"], 2, "unknown device 'gpu0'"),
    # gui
    (
        ["gui", "goal", "--max-steps", "0", "--screenshot", "sample"],
        2,
        "--max-steps: must be at least 1, got 0",
    ),
    (["gui", "goal", "--max-steps", "-3", "--screenshot", "sample"], 2, "must be at least 1, got -3"),
    (["gui", "goal", "--max-seconds", "-1", "--screenshot", "sample"], 2, "--max-seconds: must be above 0"),
    (["gui", "goal", "--max-seconds", "nan", "--screenshot", "sample"], 2, "finite"),
    (["gui", "goal", "--allow", "bogus", "--screenshot", "sample"], 2, "unknown action type(s) 'bogus'"),
    (["gui", "goal", "--confirm", "--screenshot", "sample"], 2, "standard input is not one"),
    (["gui", "", "--screenshot", "sample"], 2, "goal: must not be empty"),
    (["gui", "   ", "--screenshot", "sample"], 2, "goal: must not be empty"),
    (["gui", "goal", "--screenshot", "sample", "--region", "0,0,10,10"], 2, "crop the image"),
    (["gui", "goal", "--region", "1,2,3"], 2, "expected X,Y,W,H"),
    (["gui", "goal", "--region", "0,0,0,5"], 2, "at least 1"),
    (["gui", "goal", "--region", "0,0,5,5", "--window", "x"], 2, "not allowed with argument"),
    (["gui", "goal", "--screenshot", "missing.png"], 2, "--screenshot 'missing.png' does not exist"),
    (["gui", "goal", "--screenshot", "sample", "--record", "a_file"], 2, "is a file, not a folder"),
    (["gui", "goal", "--step", ""], 2, "--step: must not be empty"),
    # eval
    (["eval", "molmo_agent/Nope-v0"], 2, f"molmo_envs environments: {SG}"),
    (["eval", "CartPole-v1"], 2, "unknown environment 'CartPole-v1'"),
    (["eval", SG, "--episodes", "0"], 2, "at least 1 episode"),
    (["eval", SG, "--episodes", "some"], 2, "a number or 'all'"),
    (["eval", SG, "--concurrency", "0"], 2, "--concurrency: must be at least 1"),
    (["eval", SG, "--env-arg", "foo"], 2, "expected KEY=VALUE"),
    (["eval", SG, "--env-arg", "nope=1"], 2, "its parameters are screen_size, task"),
    (["eval", SG, "--env-arg", "task=bogus"], 2, "does not accept these arguments: task must be one of"),
    (["eval", SG, "--data-dir", "."], 2, "--data-dir . does not apply to molmo_agent/SyntheticGui-v0"),
    (["eval", SG, "--protocol", "molmo"], 2, "--protocol molmo does not apply"),
    (["eval", AC], 2, "pass --data-dir DIR"),
    (["eval", AC, "--data-dir", "missing"], 2, "--data-dir 'missing' does not exist"),
    (["eval", SG, "--out", "a_file"], 2, "is a file, not a folder"),
    (["eval", SG, "--seed", "-1"], 2, "--seed: must be at least 0"),
    # finetune
    (["finetune", "--out", "run"], 2, "give --model"),
    (
        ["finetune", "--out", "run", "--init-preset", "tiny", "--data", "android_control:/missing"],
        2,
        "does not exist",
    ),
    (
        ["finetune", "--out", "run", "--init-preset", "tiny", "--data", "pixmo:none.jsonl"],
        2,
        "does not exist",
    ),
    (
        ["finetune", "--out", "run", "--init-preset", "tiny", "--data", "nope"],
        2,
        "unknown data source 'nope'",
    ),
    (  # the embedded default's research knobs belong to its recipe's entry, not to finetune
        ["finetune", "--out", "run", "--init-preset", "tiny", "--attend-axis-heads"],
        2,
        "unrecognized arguments: --attend-axis-heads",
    ),
    (["finetune", "--out", "run", "--init-preset", "huge"], 2, "invalid choice: 'huge'"),
    (["finetune", "--out", "run", "--model", OFFLINE_HUB_ID], 2, f"`hf download {OFFLINE_HUB_ID}`"),
    (["finetune", "--out", "a_file", "--init-preset", "tiny"], 2, "is a file, not a folder"),
    # serve, point, demo, build-tiny, bench
    (["serve", "--model", OFFLINE_HUB_ID], 2, f"`hf download {OFFLINE_HUB_ID}`"),
    (["serve", "--port", "70000"], 2, "a port is 0..65535"),
    (
        ["serve", "--tls-cert", "missing.pem", "--tls-key", "missing.key"],
        2,
        "--tls-cert 'missing.pem' does not",
    ),
    (["point", "sample", "mug", "--model", OFFLINE_HUB_ID], 2, f"`hf download {OFFLINE_HUB_ID}`"),
    (["point", "sample", "mug", "--model", "no/such/folder/"], 2, "does not exist"),
    (["point", "missing.png", "mug"], 2, "image 'missing.png' does not exist"),
    (["point", "sample", " "], 2, "query: must not be empty"),
    (["point", "sample", "mug", "--out", "a_file/x.png"], 2, "cannot write --out"),
    (["point", "sample", "mug", "--out", "/proc/no/x.png"], 2, "cannot write --out"),
    (["point", "sample", "mug", "--out", "points.txt"], 2, "needs one of the suffixes .png"),
    (["point", "sample", "mug", "--cpu-threads", "0"], 2, "--cpu-threads: must be at least 1"),
    (["demo", "--gui-episodes", "-1"], 2, "--gui-episodes: must be at least 0"),
    (["demo", "--gui-episodes", "0", "--tabletop-scenes", "0"], 2, "nothing to run"),
    (["build-tiny", "a_file"], 2, "is a file, not a folder"),
    (["bench", "--runs", "0"], 2, "--runs: must be at least 1"),
    (["bench", "gpu", "--size", "huge"], 2, "invalid choice: 'huge'"),
    # the parser itself
    ([], 2, "required: COMMAND"),
    (["nope"], 2, "invalid choice: 'nope'"),
    (["point", "sample", "mug", "--nope"], 2, "unrecognized arguments: --nope"),
]


@pytest.mark.parametrize(("argv", "code", "fragment"), CASES, ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_a_mistake_is_one_line_and_a_status(argv, code, fragment, workdir, capsys):
    got, out, err = run(argv, capsys)
    assert (got, fragment in err) == (code, True), err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("molmo-agent: error: "), err


def test_cuda_without_cuda_is_a_usage_error(workdir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(["point", "sample", "mug", "--device", "cuda"], capsys)
    assert code == 2 and "CUDA is not available here" in err


def test_version_and_help_show_defaults(capsys):
    assert run(["--version"], capsys)[1].strip() == f"molmo-agent {__version__}"
    code, out, _ = run(["eval", "--help"], capsys)
    assert code == 0 and "(default: 20)" in out and "130 interrupted" in out
    assert "(default: failures)" in out and "(default: 1)" in out


def test_every_option_of_every_verb_has_help(capsys):
    from molmo_agent.cli_parser import build_parser

    verbs = build_parser()._subparsers._group_actions[0].choices
    for name, parser in verbs.items():
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_a_hub_id_with_the_hub_unreachable_fails_fast_and_works_offline(workdir, capsys, monkeypatch):
    """Without HF_HUB_OFFLINE, an unreachable Hub is found by a short probe rather than minutes of retries."""
    import os

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("molmo_agent.cli_checks.hub_reachable", lambda: False)
    code, _, err = run(["point", "sample", "mug", "--model", OFFLINE_HUB_ID], capsys)
    assert code == 2 and f"`hf download {OFFLINE_HUB_ID}`" in err
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_an_unexpected_error_is_one_line_and_minus_v_anywhere_shows_the_traceback(
    workdir, capsys, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("molmo_agent.model.load_model", broken)
    code, _, err = run(["point", "sample", "mug"], capsys)
    assert code == 1 and err == "molmo-agent: error: RuntimeError: boom (rerun with -v for the traceback)\n"
    for argv in (["-v", "point", "sample", "mug"], ["point", "sample", "mug", "-v"]):
        code, _, err = run(argv, capsys)
        assert code == 1 and "Traceback" in err and err.strip().endswith("RuntimeError: boom")


def test_ctrl_c_exits_130(workdir, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("molmo_agent.model.load_model", interrupted)
    assert run(["point", "sample", "mug"], capsys)[:3:2] == (130, "molmo-agent: interrupted\n")


def test_ctrl_c_in_finetune_says_how_to_resume(workdir, capsys, monkeypatch):
    def interrupted(config, objective=None):
        if config.out_dir.name == "run":  # the first run got as far as one checkpoint
            checkpoint = Path(config.out_dir) / "checkpoint-20"
            checkpoint.mkdir(parents=True)
            (checkpoint / "trainer_state.pt").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr("molmo_agent.training.finetune", interrupted)
    code, _, err = run(["finetune", "--out", "run", "--init-preset", "tiny"], capsys)
    assert code == 130
    assert err == f"interrupted; rerun the same command to resume from {Path('run') / 'checkpoint-20'}\n"
    code, _, err = run(["finetune", "--out", "fresh", "--init-preset", "tiny", "--save-every", "50"], capsys)
    assert code == 130 and "no checkpoint yet: one is saved every 50 steps" in err


def test_confirm_with_a_closed_input_quits_instead_of_raising(monkeypatch):
    from molmo_agent.actions import Action
    from molmo_agent.agent.executors.safety import ask_on_terminal

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert ask_on_terminal(Action(type="wait")) == "q"
