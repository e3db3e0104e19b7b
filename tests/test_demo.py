"""``molmo-agent demo``: the headline suites through the evaluation harness, success rates and the report."""

from __future__ import annotations

import json

from molmo_agent.cli import main


def test_demo_runs_offline_and_writes_the_report(tiny_dir, tmp_path, capsys):
    args = ["demo", "--model", str(tiny_dir), "--out", str(tmp_path), "--gui-episodes", "2"]
    assert main([*args, "--tabletop-scenes", "2", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "SyntheticGui" in printed and "TabletopPointing" in printed and "index.html" in printed
    assert "molmo-agent eval molmo_agent/SyntheticGui-v0 --env-arg task=icon" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["synthetic_gui"]["episodes"] == 2 and summary["tabletop"]["episodes"] == 2
    assert [run["seed"] for run in summary["synthetic_gui"]["runs"]] == [5, 6]
    assert "difficulty=0" in summary["synthetic_gui"]["settings"]
    page = (tmp_path / "index.html").read_text()
    assert page.count("<figure>") == 4 and "evaluation report" in page
    for suite in ("synthetic_gui", "tabletop"):
        assert (tmp_path / suite / "report.html").is_file() and (tmp_path / suite / "run.json").is_file()
    assert (tmp_path / "tabletop" / "demo_0005.png").is_file()
    assert main([*args, "--tabletop-scenes", "2", "--seed", "7"]) == 0  # another seed: the demo starts over
    assert [
        r["seed"] for r in json.loads((tmp_path / "summary.json").read_text())["synthetic_gui"]["runs"]
    ] == [
        7,
        8,
    ]


def test_demo_numbers_are_the_eval_numbers(tiny_dir, tmp_path, capsys):
    """The demo's SyntheticGui rate is ``eval``'s step accuracy with the suite's documented arguments."""
    from molmo_agent.evaluation.suites import SUITES

    assert (
        main(
            [
                "demo",
                "--model",
                str(tiny_dir),
                "--out",
                str(tmp_path / "demo"),
                "--gui-episodes",
                "2",
                "--tabletop-scenes",
                "0",
            ]
        )
        == 0
    )
    command = SUITES["synthetic_gui"].command(2, 0).split()[2:]
    out = tmp_path / "eval"
    assert main(["eval", *command, "--model", str(tiny_dir), "--out", str(out), "--no-progress"]) == 0
    demo = json.loads((tmp_path / "demo" / "summary.json").read_text())["synthetic_gui"]
    assert demo["success_rate"] == round(json.loads((out / "summary.json").read_text())["step_accuracy"], 4)
    assert [json.loads(line)["raw_text"] for line in (out / "steps.jsonl").read_text().splitlines()] == [
        json.loads(line)["raw_text"]
        for line in (tmp_path / "demo" / "synthetic_gui" / "steps.jsonl").read_text().splitlines()
    ]
