"""Nothing outside configs/ hard-codes the seed campaign: a different space and targets work end to end."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from optimize.config import load_config
from optimize.service import history, ingest, suggest
from tests.conftest import free_port

CONFIG = {
    "name": "toy",
    "data_dir": "data",
    "tracking_dir": "mlruns",
    "inputs": [
        {"name": "time_h", "type": "continuous", "lower": 1, "upper": 10},
        {"name": "solvent", "type": "categorical", "choices": ["water", "ethanol", "toluene"]},
    ],
    "targets": [
        {"name": "yield_pct", "direction": "maximize", "reference": 0, "lower": 0, "upper": 100},
        {"name": "cost", "direction": "minimize", "reference": 10, "lower": 0},
    ],
    "acquisition": {"mc_samples": 32, "raw_samples_per_combo": 16, "restarts": 2, "maxiter": 20},
}


def test_other_campaign_round_trip(tmp_path: Path, monkeypatch):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    cfg = load_config(path)
    # an empty campaign starts with a space-filling design
    first = suggest(cfg, 3, seed=0)
    assert first.strategy == "sobol" and len(first.suggestions) == 3
    filled = tmp_path / "b1.csv"
    rows = ["experiment_id,batch,time_h,solvent,yield_pct,cost"]
    for i, s in enumerate(first.suggestions):
        t = s.inputs["time_h"]
        rows.append(f"{s.id},{first.batch},{t},{s.inputs['solvent']},{10 * t - i},{t / 2}")
    filled.write_text("\n".join(rows) + "\n")
    ingest(cfg, filled)
    second = suggest(cfg, 2, seed=0)
    assert second.strategy == "portfolio"  # the default kind
    for s in second.suggestions:
        assert 1 <= s.inputs["time_h"] <= 10 and s.inputs["solvent"] in ("water", "ethanol", "toluene")
        assert set(s.predicted) == {"yield_pct", "cost"}
    h = history(cfg)
    assert len(h.experiments) == 3 and len(h.pending) == 2


def test_kiln_ui_serves_mlflow_on_localhost(config_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "optimize.cli", "ui", "--config", str(config_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline, body = time.time() + 90, ""
        while time.time() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    body = r.read().decode("utf-8", "replace")
            except OSError:
                time.sleep(0.5)
        assert "mlflow" in body.lower()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
