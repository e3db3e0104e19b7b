"""Repository hygiene that CI relies on: lint, formatting, and the README's commands."""

from __future__ import annotations

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


@pytest.mark.parametrize("folder", ["molmo_agent", "protos", "envs/molmo_envs", "examples", "tests"])
def test_layout_matches_the_design(folder):
    assert (ROOT / folder).is_dir()
