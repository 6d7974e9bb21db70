"""The product end to end through the real CLI: suggest -> fill template -> ingest -> history, MLflow runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from optimize.cli import app
from tests.conftest import snapshot

runner = CliRunner()
TARGETS = ("plqy", "fwhm_nm", "dispersibility", "water_retention")


def kiln(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _json(result) -> dict:
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_round_trip(config_path, config, tmp_path):
    from mlflow.tracking import MlflowClient

    # 1. suggest: 4 valid, distinct recipes with mean and std for all four targets
    doc = _json(kiln("suggest", "-n", "4", "--seed", "3", "--format", "json", "--config", str(config_path)))
    sugg = doc["suggestions"]
    assert len(sugg) == 4 and len({json.dumps(s["inputs"], sort_keys=True) for s in sugg}) == 4
    for s in sugg:
        assert set(s["predicted"]) == set(TARGETS)
        for p in s["predicted"].values():
            assert p["mean"] is not None and p["std"] > 0
        assert 400 <= s["inputs"]["temperature_c"] <= 800
    run_id = doc["mlflow_run_id"]

    # 2. the ledger holds them as pending, the template is ready to fill in
    hist = _json(kiln("history", "--format", "json", "--config", str(config_path)))
    assert [p["suggestion_id"] for p in hist["pending"]] == [s["id"] for s in sugg]
    template = pd.read_csv(doc["template"], dtype=str, keep_default_na=False)
    assert list(template.experiment_id) == [s["id"] for s in sugg]
    assert (template.plqy == "").all()

    # 3. a second suggestion does not repeat the pending ones
    doc2 = _json(kiln("suggest", "-n", "2", "--seed", "3", "--format", "json", "--config", str(config_path)))
    first = {json.dumps(s["inputs"], sort_keys=True) for s in sugg}
    assert not first & {json.dumps(s["inputs"], sort_keys=True) for s in doc2["suggestions"]}
    assert doc2["batch"] == "S002"

    # 4. the lab fills in the template and ingests it
    template["plqy"] = ["70", "55.5", "12", "40"]
    template["plqy_qualifier"] = ["", "", "<", ""]
    template["dispersibility"] = ["0.9", "0.5", "0.75", "1"]
    template["water_retention"] = ["0.95", "", "0.9", "0.85"]  # one sample not water-tested yet
    template["notes"] = "round-trip test"
    filled = tmp_path / "filled.csv"
    template.to_csv(filled, index=False)
    ing = _json(kiln("ingest", str(filled), "--format", "json", "--config", str(config_path)))
    assert ing["rows"] == 4 and ing["retrain"]["data_version"] == ing["data_version"]
    scores = {t["target"]: t for t in ing["retrain"]["targets"]}
    assert scores["plqy"]["n_rows"] == 9 + 4 and scores["plqy"]["n_censored"] == 4 + 1

    # 5. history: 17 experiments, first batch no longer pending, best PLQY is still the paper's 87 %
    hist = _json(kiln("history", "--format", "json", "--config", str(config_path)))
    assert len(hist["experiments"]) == 13 + 4
    assert [p["suggestion_id"] for p in hist["pending"]] == [s["id"] for s in doc2["suggestions"]]
    assert hist["best"]["plqy"] == {"value": 87.0, "experiment_id": "he2023-07"}
    assert "he2023-07" in hist["pareto_set"]
    assert hist["data_version"] == ing["data_version"]

    # 6. MLflow: one experiment, suggest / ingest / retrain runs with params, metrics, artifacts
    client = MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name("cspbbr3_sio2")
    runs = client.search_runs([exp.experiment_id])
    kinds = sorted(r.data.tags["kiln.kind"] for r in runs)
    assert kinds == ["ingest", "retrain", "suggest", "suggest"]
    suggest_run = client.get_run(run_id)
    assert suggest_run.data.params["n"] == "4" and "seconds_total" in suggest_run.data.metrics
    assert {a.path for a in client.list_artifacts(run_id)} >= {"pareto_front.png", "suggestions.json"}
    retrain_run = next(r for r in runs if r.data.tags["kiln.kind"] == "retrain")
    assert retrain_run.data.tags["kiln.triggered_by"] == ing["mlflow_run_id"]
    assert "plqy.loo_rmse" in retrain_run.data.metrics
    assert {a.path for a in client.list_artifacts(retrain_run.info.run_id, "models")} >= {f"models/{t}.pt" for t in TARGETS}
    assert (config.tracking_path / "mlflow.db").exists()

    # 7. ingesting the same file again is refused, exit code 2, nothing changes
    before = snapshot(config.data_path)
    again = kiln("ingest", str(filled), "--config", str(config_path))
    assert again.exit_code == 2 and "already ingested" in again.stderr
    assert snapshot(config.data_path) == before


def test_retrain_and_history_tables(config_path):
    res = kiln("retrain", "--format", "json", "--config", str(config_path))
    doc = _json(res)
    assert {t["target"] for t in doc["targets"]} == set(TARGETS)
    plqy = next(t for t in doc["targets"] if t["target"] == "plqy")
    assert plqy["n_rows"] == 9 and plqy["n_censored"] == 4 and plqy["loo_rmse"] > 0
    table = kiln("history", "--config", str(config_path))
    assert table.exit_code == 0 and "he2023-07" in table.stdout and "best so far" in table.stdout


def test_bad_config_is_a_clean_error(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("name: x\n")
    res = kiln("suggest", "--config", str(bad))
    assert res.exit_code == 2 and "invalid campaign config" in res.stderr and "Traceback" not in res.stderr


def test_tracking_uri_env_overrides(config_path, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _json(kiln("retrain", "--format", "json", "--config", str(config_path)))
    exp = MlflowClient(uri).get_experiment_by_name("cspbbr3_sio2")
    assert exp is not None and len(MlflowClient(uri).search_runs([exp.experiment_id])) == 1
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


@pytest.mark.parametrize("cmd", [["--help"], ["suggest", "--help"], ["ui", "--help"]])
def test_help(cmd):
    res = kiln(*cmd)
    assert res.exit_code == 0 and "Usage" in res.stdout
