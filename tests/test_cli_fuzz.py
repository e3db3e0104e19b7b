"""Property: whatever arguments a verb is given, the CLI answers with a status and at most one error line.

Argument lists are generated from each sub-parser's own actions (so a new option is fuzzed without editing
this file), with values drawn from valid ones and junk. The verbs run in-process; only the long parts are
replaced (the model is the embedded one, loaded once; training, evaluation, serving, the demo and the
benchmarks return at once), so the parsing, the up-front checks and the error reporting are the real ones.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molmo_agent.cli import main
from molmo_agent.cli_parser import build_parser

VERBS = build_parser()._subparsers._group_actions[0].choices
JUNK = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "2",
    "1e309",
    "nan",
    "inf",
    "-0.5",
    "x",
    "1,2",
    "0,0,10,10",
    "a=b",
    "=",
    "/proc/x/y",
]
POSITIONALS = {
    "image": ["sample", "missing.png", ""],
    "query": ["the red mug", " ", "é"],
    "goal": ["click Save", "", "click File; click Save"],
    "env_id": ["molmo_agent/SyntheticGui-v0", "molmo_agent/TabletopPointing-v0", "CartPole-v1", "x"],
    "out": ["out", "a_file", ""],
    "what": ["point", "agent", "serve", "gpu", "nope"],
}
GOOD = {
    "--model": ["allenai/Molmo2-4B", "no/such/dir/", "grpc://127.0.0.1:1"],
    "--env-arg": ["task=icon", "difficulty=1", "nope=1", "foo"],
    "--data": ["synthetic_gui:icon", "tabletop:max2", "pixmo:none.jsonl", "nope", "shapes:max1,x3"],
    "--screenshot": ["sample", "missing.png"],
    "--region": ["0,0,100,100", "1,2,3", "0,0,0,0"],
    "--device": ["cpu", "cuda", "tpu", "cuda:7"],
    "--init-preset": ["tiny", "huge"],
}


def option_strategy(action: argparse.Action) -> st.SearchStrategy[list[str]]:
    flag = action.option_strings[-1]
    if action.nargs == 0:
        return st.just([flag])
    values = list(action.choices or []) + GOOD.get(flag, []) + [str(action.default)] + JUNK
    return st.tuples(st.just(flag), st.sampled_from(values) | st.text(max_size=6)).map(list)


def argv_strategy(verb: str) -> st.SearchStrategy[list[str]]:
    parser = VERBS[verb]
    positionals = [
        st.sampled_from(POSITIONALS.get(a.dest, JUNK)).map(lambda v: [v])
        for a in parser._actions
        if not a.option_strings
    ]
    optional = [a for a in parser._actions if a.option_strings and a.dest not in ("help", "verbose")]
    required = st.tuples(*(option_strategy(a) for a in optional if a.required))  # e.g. finetune --out
    options = [option_strategy(a) for a in optional if not a.required]
    chosen = st.lists(st.sampled_from(options), max_size=4).flatmap(lambda picks: st.tuples(*picks))
    return st.tuples(st.tuples(*positionals), required, chosen).map(
        lambda parts: [verb] + [v for group in parts for item in group for v in item]
    )


@pytest.fixture(scope="module")
def default_model():
    import molmo_agent as ma

    return ma.load_model()


@contextlib.contextmanager
def fast_verbs(default_model, folder: Path):
    """The long parts of each verb replaced by instant ones; runs in ``folder``, offline, stdin a pipe."""
    from molmo_agent.agent.records import RunResult

    async def serve(config, model=None):
        return None

    def built(out, spec) -> Path:
        Path(out).mkdir(parents=True, exist_ok=True)
        return Path(out)

    # modules that bind ``load_model`` by name at import must be imported before the patch: first imported
    # inside it, they would keep the stand-in for the rest of the test session
    importlib.import_module("molmo_agent.demo")
    importlib.import_module("molmo_agent.server.app")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_HUB_CACHE", str(folder / "hub"))
        patch.setattr("sys.stdin", io.StringIO(""))
        patch.setattr("molmo_agent.model.load_model", lambda *a, **k: default_model)
        patch.setattr("molmo_agent.agent.run_agent", lambda goal, *a, **k: RunResult(goal, "done", []))
        patch.setattr("molmo_agent.evaluation.run_eval", lambda *a, **k: {"headline": "", "settings": ""})
        patch.setattr("molmo_agent.training.finetune", lambda config, objective: config.out_dir / "final")
        patch.setattr("molmo_agent.server.app.serve", serve)
        patch.setattr("molmo_agent.demo.run_demo", lambda **k: {"lines": []})
        patch.setattr("molmo_agent.training.tiny_molmo2.build_tiny_molmo2", built)
        for module, name in (
            ("bench.point", "run_point_bench"),
            ("bench.agent", "run_agent_bench"),
            ("bench.gpu", "run_gpu_bench"),
            ("bench.serve", "run_serve_bench"),
        ):
            patch.setattr(f"molmo_agent.{module}.{name}", lambda **k: {"table": ""})
        yield


def assert_one_line_at_most(code: int, out: str, err: str) -> None:
    assert code in (0, 1, 2, 130), code
    assert "Traceback" not in out + err
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("molmo-agent: "), err
        assert len([line for line in lines if "error:" in line]) == 1, err


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_no_argument_list_gives_a_traceback(verb, default_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"fuzz-{verb}")
    (folder / "a_file").write_text("x")

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(argv=argv_strategy(verb))
    def property_holds(argv: list[str]) -> None:
        out, err = io.StringIO(), io.StringIO()
        with (
            fast_verbs(default_model, folder),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = main(argv)
        assert_one_line_at_most(code, out.getvalue(), err.getvalue())

    property_holds()
