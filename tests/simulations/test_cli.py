"""The simulate, evaluate, audit and export-log commands through ``attune``'s entry point."""

from __future__ import annotations

import json

import pytest

from api.cli import main


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    rc = main(
        [
            "simulate",
            "--scenario",
            "groups",
            "--out",
            str(out),
            "--users",
            "120",
            "--rounds",
            "6",
            "--policies",
            "uniform,best-global,lints,oracle",
            "--param",
            "lints.scale=0.2",
            "--log-policy",
            "uniform",
            "--no-progress",
        ]
    )
    assert rc == 0
    return out


def test_simulate_writes_every_artifact(sim_dir, capsys):
    for name in (
        "results.parquet",
        "users.parquet",
        "summary.json",
        "report.md",
        "log.parquet",
        "regret.png",
        "reward.png",
        "groups.png",
    ):
        assert (sim_dir / name).stat().st_size > 0, name
    summary = json.loads((sim_dir / "summary.json").read_text())
    lints = summary["policies"]["lints"]
    for key in ("cumulative_regret", "mean_reward", "time_to_personalize", "groups"):
        assert key in lints
    assert set(lints["groups"]["locale"]) == {"en", "es", "ja", "ko", "zh"}
    assert "mean_reward" in lints["groups"]["locale"]["en"]


def test_evaluate_prints_intervals_and_writes_json(sim_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(
        [
            "evaluate",
            "--log",
            str(sim_dir / "log.parquet"),
            "--policy",
            "linucb",
            "--param",
            "alpha=0.2",
            "--bootstrap",
            "30",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    for name in ("ips", "snips", "dm", "dr", "switch-dr"):
        assert name in printed
    result = json.loads(out.read_text())
    assert result["params"] == {"alpha": 0.2}
    ips = result["estimates"]["ips"]
    assert ips["lower"] <= ips["value"] <= ips["upper"]


def test_audit_of_a_simulation_flags_the_one_size_fits_all_strategy(sim_dir, capsys):
    rc = main(
        [
            "audit",
            "--sim",
            str(sim_dir),
            "--policy",
            "best-global",
            "--by",
            "group_age_band",
            "--bootstrap",
            "200",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "served worse:" in out and "50+" in out  # the minority persona's age band
    saved = json.loads((sim_dir / "audit.json").read_text())
    assert saved[0]["policy"] == "best-global" and "50+" in saved[0]["worse"]


ERRORS = [
    (["simulate", "--out", "x", "--policies", "nope"], "--policies: unknown 'nope'"),
    (["simulate", "--out", "x", "--scenario", "nope"], "unknown scenario 'nope'"),
    (["simulate", "--out", "x", "--users", "0"], "--users must be >= 1"),
    (["simulate", "--out", "x", "--param", "lints.scale"], "expected KEY=VALUE"),
    (["evaluate", "--log", "missing.parquet", "--policy", "lints"], "no such file"),
    (["evaluate", "--log", "x.parquet", "--policy", "magic"], "--policy: unknown 'magic'"),
    (["audit", "--sim", "nowhere"], "users.parquet not found"),
    (["export-log", "--data-dir", "nowhere", "--out", "x.parquet"], "no such store"),
    (["export-log", "--data-dir", "nowhere", "--out", "x.csv"], "expected a .parquet file"),
]


@pytest.mark.parametrize(("argv", "message"), ERRORS)
def test_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_export_log_then_evaluate_from_the_store(tmp_path, capsys):
    from tests.simulations.test_logs import _store_with_decisions

    _store_with_decisions(tmp_path / "data" / "attune.sqlite", n=40)
    out = tmp_path / "log.parquet"
    assert main(["export-log", "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    assert main(["evaluate", "--log", str(out), "--policy", "uniform", "--bootstrap", "20"]) == 0
    assert (
        main(
            [
                "audit",
                "--log",
                str(tmp_path / "data"),
                "--by",
                "audit_locale",
                "--bootstrap",
                "50",
                "--out",
                str(tmp_path / "a.json"),
            ]
        )
        == 0
    )
    assert "audit_locale" in capsys.readouterr().out
