"""Amendments: late measurements and corrections of experiments already in a campaign, stored append-only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optimize.campaign import BATCHES, cell_history, ingest_batch, load_campaign
from optimize.cli import app
from optimize.errors import DataError
from tests.conftest import ROOT, snapshot

runner = CliRunner()


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _row(campaign, eid: str) -> dict:
    frame = campaign.experiments
    return frame[frame["experiment_id"] == eid].iloc[0].to_dict()


def test_late_values_and_corrections_make_the_latest_view_and_every_value_is_kept(config, config_path, tmp_path):
    n = len(load_campaign(config).experiments)
    # Monday: PLQY and FWHM of a new experiment; its water test is still running
    monday = _write(
        tmp_path,
        "monday.csv",
        "experiment_id,batch,temperature_c,k_ratio,carbonate,addition,br_fraction,plqy,fwhm_nm,dispersibility,"
        "water_retention\nlab-1,L1,620,1,K2CO3,internal,1,84.1,22.9,1,\n",
    )
    ingest_batch(config, monday, by="ana")
    # Tuesday: the water retention arrives, with the furnace's logged temperature
    tuesday = _write(tmp_path, "tuesday.csv", "experiment_id,water_retention,temperature_c_actual\nlab-1,0.93,626\n")
    added = ingest_batch(config, tuesday, by="ben")
    assert (added.rows, added.amended) == (0, 2)
    # a week later: a typo in PLQY, corrected with a reason, and a late FWHM for a seed experiment
    fix = _write(
        tmp_path,
        "fix.csv",
        "experiment_id,plqy,fwhm_nm,reason,source\nlab-1,48.1,,typo: 48.1 not 84.1,ana's lab book p. 12\n"
        "he2023-03,,24.5,,spectrometer 2\n",
    )
    ingest_batch(config, fix, by="ana")

    campaign = load_campaign(config)
    assert len(campaign.experiments) == n + 1  # amendments add no experiments
    lab = _row(campaign, "lab-1")
    assert (lab["plqy"], lab["fwhm_nm"], lab["water_retention"]) == (48.1, 22.9, 0.93)
    assert (lab["temperature_c"], lab["temperature_c_planned"]) == (626.0, 620.0)  # models use the actual value
    assert _row(campaign, "he2023-03")["fwhm_nm"] == 24.5
    kinds = list(zip(campaign.amendments["column"], campaign.amendments["kind"]))
    assert kinds == [
        ("temperature_c_actual", "measurement"),
        ("water_retention", "measurement"),
        ("plqy", "correction"),
        ("fwhm_nm", "measurement"),
    ]
    # every value of every cell, where it came from, who sent it and when
    cells = cell_history(campaign, "lab-1")
    plqy = cells[cells["column"] == "plqy"].to_dict("records")
    assert [(c["value"], c["kind"], c["current"], c["by"]) for c in plqy] == [
        ("84.1", "original", False, "ana"),
        ("48.1", "correction", True, "ana"),
    ]
    assert plqy[1]["reason"] == "typo: 48.1 not 84.1" and plqy[1]["row"] == 2
    water = cells[cells["column"] == "water_retention"].to_dict("records")
    assert [(c["value"], c["kind"], c["by"]) for c in water] == [("0.93", "measurement", "ben")]
    assert all(c["ingested_utc"].endswith("Z") for c in plqy)
    # stored append-only: each file as received, beside its provenance
    stored = sorted((config.data_path / BATCHES).glob("*.csv"))[-3:]
    assert [p.read_bytes() for p in stored] == [f.read_bytes() for f in (monday, tuesday, fix)]
    assert "by: ben" in stored[1].with_suffix(".yaml").read_text()
    # the CLI shows the same history
    res = runner.invoke(app, ["history", "--experiment", "lab-1", "--format", "json", "--config", str(config_path)])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [c["value"] for c in doc["cells"] if c["column"] == "plqy"] == ["84.1", "48.1"]
    table = runner.invoke(
        app, ["history", "--experiment", "lab-1", "--config", str(config_path)], env={"COLUMNS": "80"}
    )
    assert table.exit_code == 0 and "typo: 48.1 not 84.1" in table.stdout and "correction" in table.stdout
    unknown = runner.invoke(app, ["history", "--experiment", "lab-2", "--config", str(config_path)])
    assert unknown.exit_code == 2 and "did you mean 'lab-1'" in unknown.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("experiment_id,water_retention\nhe2023-99,0.5\n", r"row 2, column 'experiment_id': unknown experiment id"),
        (
            "experiment_id,water_retention,fwhm_nm\nhe2023-08,0.5,\nhe2023-08,,30\n",
            r"row 3, column 'experiment_id': the experiment appears twice in this file",
        ),
        (
            "experiment_id,plqy\nhe2023-03,38\n",
            r"row 2, column 'plqy': plqy of he2023-03 is already 37.*needs a reason",
        ),
        (
            "experiment_id,temperature_c,water_retention\nhe2023-08,650,0.5\n",
            r"column 'temperature_c': planned inputs cannot be changed.*temperature_c_actual",
        ),
        ("experiment_id,plqy,reason\nhe2023-03,37,same\n", r"nothing new for experiment he2023-03"),
        (
            "experiment_id,status,reason\nhe2023-03,failed,no product after all\n",
            r"a failed synthesis has no measured values",
        ),
        ("experiment_id,water_retention\nhe2023-08,1.5\n", r"column 'water_retention': outside the physical range"),
        (
            "experiment_id,batch,temperature_c,k_ratio,carbonate,addition,br_fraction,plqy,fwhm_nm,dispersibility,"
            "water_retention,reason\nnew-1,L,600,1,K2CO3,internal,1,50,,,,why\n",
            r"column 'reason': a reason is for corrections",
        ),
    ],
    ids=["unknown-id", "twice-in-file", "no-reason", "planned-input", "nothing-new", "failed-with-values", "range",
         "reason-on-new"],
)  # fmt: skip
def test_bad_amendments_are_refused_and_nothing_is_written(config, tmp_path, text, message):
    before = snapshot(config.data_path)
    with pytest.raises(DataError, match=message):
        ingest_batch(config, _write(tmp_path, "amend.csv", text))
    assert snapshot(config.data_path) == before


def test_a_correction_needs_a_reason_even_when_the_cell_was_filled_by_an_amendment(config, tmp_path):
    ingest_batch(config, _write(tmp_path, "late.csv", "experiment_id,fwhm_nm\nhe2023-08,30\n"))
    with pytest.raises(DataError, match="fwhm_nm of he2023-08 is already 30"):
        ingest_batch(config, _write(tmp_path, "again.csv", "experiment_id,fwhm_nm\nhe2023-08,31\n"))
    ingest_batch(config, _write(tmp_path, "fix.csv", "experiment_id,fwhm_nm,reason\nhe2023-08,31,re-fitted peak\n"))
    assert _row(load_campaign(config), "he2023-08")["fwhm_nm"] == 31.0


@pytest.mark.slow
def test_eight_concurrent_amendments_all_land_once(config_path, config, tmp_path):
    ids = [f"he2023-{k:02d}" for k in (1, 2, 3, 4, 5, 6, 8, 9)]  # no FWHM yet: late measurements
    files = [_write(tmp_path, f"a{k}.csv", f"experiment_id,fwhm_nm\n{eid},{30 + k}\n") for k, eid in enumerate(ids)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "optimize.cli", "ingest", str(f), "--no-retrain", "--config", str(config_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    campaign = load_campaign(config)
    assert [_row(campaign, eid)["fwhm_nm"] for eid in ids] == [30.0 + k for k in range(8)]
    assert len(campaign.amendments) == 8 and set(campaign.amendments["kind"]) == {"measurement"}
    numbers = [b.path.name[:3] for b in campaign.batches]
    assert len(set(numbers)) == len(numbers)
