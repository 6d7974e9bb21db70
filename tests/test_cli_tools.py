"""``kiln init``, ``kiln validate-config``, ``kiln history --plot`` and ``--quiet`` through the real CLI."""

from __future__ import annotations

import json

from tests.conftest import kiln


def test_init_creates_a_campaign_that_validates_and_suggests_a_first_design(tmp_path):
    folder = tmp_path / "my-lab"
    res = kiln("init", str(folder))
    assert res.exit_code == 0, res.stderr
    cfg = folder / "campaign.yaml"
    text = cfg.read_text()
    assert "name: my-lab" in text and "data_dir: data" in text and "# CsPbBr3" in text  # the template's comments stay
    assert (folder / "data" / "batches").is_dir() and (folder / "mlruns").is_dir()
    doc = json.loads(kiln("validate-config", "--config", str(cfg), "--format", "json").stdout)
    assert doc["name"] == "my-lab" and doc["experiments"] == 0 and doc["batches"] == 0
    assert doc["tracking_uri"].endswith("my-lab/mlruns/mlflow.db")
    out = json.loads(kiln("--quiet", "suggest", "-n", "3", "--config", str(cfg), "--format", "json").stdout)
    assert out["strategy"] == "sobol" and len(out["suggestions"]) == 3
    again = kiln("init", str(folder))
    assert again.exit_code == 2 and "a campaign already exists here" in again.stderr
    other = json.loads(kiln("init", str(tmp_path / "other"), "--name", "other_lab", "--format", "json").stdout)
    assert (
        other["config"].endswith("other/campaign.yaml")
        and "name: other_lab" in (tmp_path / "other" / "campaign.yaml").read_text()
    )


def test_validate_config_reports_data_and_names_bad_files(config_path, config):
    res = kiln("validate-config", "--config", str(config_path))
    assert res.exit_code == 0 and "valid" in res.stdout and "plqy 9" in res.stdout
    (config.data_path / "batches" / "001_bad.csv").write_text("experiment_id,temperature_c\nx,650\n")
    bad = kiln("validate-config", "--config", str(config_path))
    assert bad.exit_code == 2 and "001_bad.csv" in bad.stderr and "required column is missing" in bad.stderr


def test_history_plot_writes_and_logs_the_figures(config_path, tmp_path):
    from mlflow.tracking import MlflowClient

    from optimize.config import load_config

    out = tmp_path / "plots"
    res = kiln("history", "--plot", str(out), "--config", str(config_path), "--format", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    names = sorted(p.split("/")[-1] for p in doc["plots"])
    # the parity and calibration plots come from the retrain that history triggered (no models were cached)
    assert names == ["calibration.png", "pareto_front.png", "parity.png", "partial_dependence.png", "progress.png"]
    for n in names:
        assert (out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / n).stat().st_size > 10_000
    cfg = load_config(config_path)
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg.name)
    (run,) = client.search_runs([exp.experiment_id], "tags.`kiln.kind` = 'history'")
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == names


def test_quiet_keeps_results_and_drops_messages(config_path, tmp_path):
    loud = kiln("history", "--plot", str(tmp_path / "p1"), "--config", str(config_path))
    quiet = kiln("--quiet", "history", "--plot", str(tmp_path / "p2"), "--config", str(config_path))
    assert "plot:" in loud.stderr and quiet.stderr == ""
    assert "best so far" in quiet.stdout
