"""Repository hygiene that CI relies on: lint, formatting, and the README's commands."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_passes():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks]


def test_quick_start_is_exactly_two_commands_and_ci_runs_the_test_command():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [b.strip() for b in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)]
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci_lines, "the README's test command must be what .ci/run runs"
    assert commands[0].endswith("molmo-agent demo")  # the main job: the agent on the synthetic envs


def test_sample_image_and_default_model_are_packaged():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"assets/*.png"' in pyproject and '"default_model/*"' in pyproject
    assert (ROOT / "molmo_agent" / "assets" / "sample.png").is_file()
    assert (ROOT / "molmo_agent" / "default_model" / "model.safetensors").is_file()


def test_the_protos_declare_the_designed_service():
    """DESIGN.md's wire contract: package molmo_agent.v1, service MolmoAgent with its five RPCs."""
    text = "\n".join(p.read_text() for p in (ROOT / "protos").rglob("*.proto"))
    assert "package molmo_agent.v1;" in text and "service MolmoAgent" in text
    for rpc in ("Point", "StreamPoint", "Act", "Generate", "GetModelInfo"):
        assert re.search(rf"rpc {rpc}\(", text), rpc


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_every_example_compiles_and_says_what_it_is_for(script):
    source = script.read_text()
    compile(source, str(script), "exec")
    assert ast.get_docstring(ast.parse(source)), f"{script.name} needs a docstring saying who it is for"
