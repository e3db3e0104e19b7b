"""``molmo-agent demo``: offline episodes through the agent loop, success rates and the HTML report."""

from __future__ import annotations

import json

from molmo_agent.cli import main


def test_demo_runs_offline_and_writes_the_report(tiny_dir, tmp_path, capsys):
    args = ["demo", "--model", str(tiny_dir), "--out", str(tmp_path), "--gui-episodes", "2"]
    assert main([*args, "--tabletop-scenes", "2", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "SyntheticGui" in printed and "TabletopPointing" in printed and "index.html" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["synthetic_gui"]["episodes"] == 2 and summary["tabletop"]["episodes"] == 2
    assert [run["seed"] for run in summary["synthetic_gui"]["runs"]] == [5, 6]
    page = (tmp_path / "index.html").read_text()
    assert page.count("trajectory</a>") == 2 and page.count("<figure>") == 2
    for seed in (5, 6):
        trajectory = tmp_path / f"gui_{seed:04d}"
        assert (trajectory / "index.html").is_file() and (trajectory / "steps.jsonl").is_file()
    assert (tmp_path / "tabletop" / "tabletop_0005.png").is_file()
