"""The product end to end through the real CLI: suggest -> fill template -> ingest -> history, MLflow runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import kiln, snapshot

TARGETS = ("plqy", "fwhm_nm", "dispersibility", "water_retention")
TARGET_HEADERS = {"plqy": "PLQY", "fwhm_nm": "FWHM", "dispersibility": "disp", "water_retention": "water"}


def _json(result) -> dict:
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_round_trip(config_path, config, tmp_path):
    from mlflow.tracking import MlflowClient

    from optimize.tracking import wait_for_run

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
    assert [k for k in kinds if k != "tuning"] == ["ingest", "retrain", "retrain", "suggest", "suggest"]
    # a fresh `kiln suggest` opens its run before returning; its tracking process fills and ends it just after
    assert wait_for_run(config, run_id) == wait_for_run(config, doc2["mlflow_run_id"]) == "FINISHED"
    suggest_run = client.get_run(run_id)
    assert suggest_run.data.params["n"] == "4" and "seconds_total" in suggest_run.data.metrics
    assert {a.path for a in client.list_artifacts(run_id)} >= {"pareto_front.png", "suggestions.json"}
    retrain_run = next(r for r in runs if r.data.tags.get("kiln.triggered_by"))
    assert retrain_run.data.tags["kiln.triggered_by"] == ing["mlflow_run_id"]
    assert (
        "dispersibility.cv_nlpd" in retrain_run.data.metrics
        and "dispersibility.constant.cv_rmse" in retrain_run.data.metrics
    )
    explored = {t["target"] for t in ing["retrain"]["targets"] if t["explorer"]}
    assert {a.path for a in client.list_artifacts(retrain_run.info.run_id, "models")} == {
        f"models/{t}.json" for t in TARGETS
    } | {f"models/{t}.explorer.json" for t in explored}
    assert {a.path for a in client.list_artifacts(retrain_run.info.run_id)} >= {
        "parity.png",
        "calibration.png",
        "importance.png",
        "model_selection.json",
    }
    tuning = [r for r in runs if r.data.tags["kiln.kind"] == "tuning"]
    assert tuning and all(r.data.tags["mlflow.parentRunId"] in {x.info.run_id for x in runs} for r in tuning)
    assert (config.tracking_path / "mlflow.db").exists()

    # 7. ingesting the same file again is refused, exit code 2, nothing changes
    before = snapshot(config.data_path)
    again = kiln("ingest", str(filled), "--config", str(config_path))
    assert again.exit_code == 2 and "already ingested" in again.stderr
    assert snapshot(config.data_path) == before


def test_retrain_reports_the_chosen_model_and_cv_scores_per_target(config_path):
    res = kiln("retrain", "--format", "json", "--config", str(config_path))
    doc = _json(res)
    by = {t["target"]: t for t in doc["targets"]}
    assert set(by) == set(TARGETS)
    assert by["plqy"]["n_rows"] == 9 and by["plqy"]["n_censored"] == 4
    for name in ("plqy", "dispersibility", "water_retention"):
        cv = by[name]["cv"]
        assert set(cv) == {"gp-onehot", "gbm", "constant"}
        best = min(cv, key=lambda k: cv[k]["nlpd"])
        assert by[name]["chosen"] == best  # the winner predicts; the acquisition explores with gp-onehot
        assert by[name]["explorer"] == ("" if best == "gp-onehot" else "gp-onehot")
        assert all(s["rmse"] > 0 and 0 <= s["coverage90"] <= 1 for s in cv.values())
        assert set(by[name]["importance"]) == {"temperature_c", "k_ratio", "carbonate", "addition", "br_fraction"}
    assert by["fwhm_nm"]["cv"] == {} and "too few" in by["fwhm_nm"]["note"]  # one measured FWHM in the paper
    table = kiln("retrain", "--config", str(config_path))
    assert table.exit_code == 0 and "NLPD" in table.stdout and "relies on" in table.stdout
    explored = [TARGET_HEADERS[t] for t in TARGETS if by[t]["explorer"]]
    assert explored and f"suggestions explore {', '.join(explored)} with gp-onehot" in table.stdout
    hist = kiln("history", "--config", str(config_path))
    assert hist.exit_code == 0 and "he2023-07" in hist.stdout and "best so far" in hist.stdout


def test_tables_fit_80_columns_and_never_cut_ids_or_values(config_path):
    """What ``make demo`` prints: every line within 80 columns, no cell cut short (no ellipsis), the ids whole,
    short headers with the units underneath, and no MLflow log lines."""
    env = {"COLUMNS": "80"}
    out = ""
    for args in (("suggest", "-n", "4"), ("history",), ("retrain",)):
        res = kiln(*args, "--config", str(config_path), env=env)
        assert res.exit_code == 0, res.stdout + res.stderr
        out += res.stdout
        assert "INFO" not in res.stderr and "database tables" not in res.stderr
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "…" not in out
    for whole in ("S001-1", "S001-4", "he2023-07", "he2023-13", "PLQY max", "FWHM min", "T in C", "gp-onehot"):
        assert whole in out, whole


def test_suggest_names_the_predicting_model_where_another_chose_the_recipes(config_path):
    """A constant that wins cross-validation at a few rows predicts the same for every recipe; the table says that
    these numbers come from it while the recipes were chosen with the explorer (models.explore_with)."""
    doc = _json(kiln("suggest", "-n", "2", "--format", "json", "--config", str(config_path)))
    assert set(doc["models"]) == set(TARGETS) and doc["explored_with"] == {t: "gp-onehot" for t in TARGETS}
    differ = [t for t in TARGETS if doc["models"][t] != "gp-onehot"]
    assert differ  # the paper's rows: some target's winner is not the explorer (see the retrain test)
    out = kiln("suggest", "-n", "2", "--config", str(config_path), env={"COLUMNS": "200"}).stdout
    said = {line.split(" predicted by ")[0]: line for line in out.splitlines() if " predicted by " in line}
    for t in TARGETS:
        header = TARGET_HEADERS[t]
        line = next((v for k, v in said.items() if header in k.split(", ")), None)
        assert (line is not None) == (t in differ), (t, out)
        if line:
            assert f"predicted by {doc['models'][t]}; suggested with gp-onehot (models.explore_with)" in line


def test_predict_arbitrary_recipes_including_an_untried_carbonate(config_path, tmp_path):
    recipes = tmp_path / "recipes.csv"
    recipes.write_text(
        "experiment_id,temperature_c,k_ratio,carbonate,addition,br_fraction\n"
        "a,600,1,K2CO3,internal,1\nb,650,1,Rb2CO3,internal,1\nc,500,,none,,0.5\n"
    )
    doc = _json(kiln("predict", str(recipes), "--format", "json", "--config", str(config_path)))
    assert [p["id"] for p in doc["predictions"]] == ["a", "b", "c"]
    assert doc["predictions"][2]["inputs"]["k_ratio"] == 0  # filled in by the condition
    for p in doc["predictions"]:
        assert set(p["predicted"]) == set(TARGETS)
        assert all(v["std"] > 0 for v in p["predicted"].values())
    assert set(doc["models"]) == set(TARGETS)
    table = kiln("predict", str(recipes), "--config", str(config_path))
    assert table.exit_code == 0 and "Rb2CO3" in table.stdout
    # a typo is an error naming the row, the column and the nearest name
    recipes.write_text("temperature_c,k_ratio,carbonate,addition,br_fraction\n600,1,K2C03,internal,1\n")
    bad = kiln("predict", str(recipes), "--config", str(config_path))
    assert bad.exit_code == 2 and "row 2" in bad.stderr and "K2CO3" in bad.stderr


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
    runs = MlflowClient(uri).search_runs([exp.experiment_id])
    assert [r.data.tags["kiln.kind"] for r in runs].count("retrain") == 1
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


@pytest.mark.parametrize("cmd", [["--help"], ["suggest", "--help"], ["ui", "--help"]])
def test_help(cmd):
    res = kiln(*cmd)
    assert res.exit_code == 0 and "Usage" in res.stdout
