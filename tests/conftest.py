"""Shared fixtures: a private copy of the seed campaign (config, data, MLflow store) in a temp dir."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SEED_CONFIG = ROOT / "configs" / "cspbbr3_sio2.yaml"
SEED_DATA = ROOT / "datasets" / "cspbbr3_sio2"

# Lighter acquisition settings keep the suite fast; the search itself is the product's code path.
FAST_ACQUISITION = {"kind": "portfolio", "mc_samples": 32, "raw_samples_per_combo": 16, "restarts": 2, "maxiter": 20}
# Every model kind competes, on smaller budgets (Optuna trials, ensemble size, CV repeats).
FAST_MODELS = {
    "candidates": ["gp-onehot", "gbm", "constant"],
    "tuning_trials": 4,
    "gbm_members": 4,
    "cv_repeats": 1,
    "importance_repeats": 2,
}
# The smallest selection that still compares every kind (GBM tuned and cross-validated): parallel-vs-serial and
# transfer tests, where what matters is which rows are scored, not the models' quality.
SMALL_SELECTION = {
    "candidates": ["gp-onehot", "gbm", "constant"],
    "tuning_trials": 3,
    "gbm_members": 3,
    "importance_repeats": 1,
}


def run_kiln(env: dict[str, str], *args: str, timeout: float = 600):
    """``kiln --quiet ARGS`` in a subprocess with ``env``; asserts it succeeded and returns the completed process."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "optimize.cli", "--quiet", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == 0, res.stderr
    return res


def free_port() -> int:
    """A free TCP port on loopback, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_campaign(tmp: Path, acquisition: dict | None = None, models: dict | None = None) -> Path:
    """Copy the seed campaign into ``tmp``; return the path of its config."""
    data = tmp / "data"
    shutil.copytree(SEED_DATA / "batches", data / "batches")
    raw = yaml.safe_load(SEED_CONFIG.read_text())
    raw["data_dir"] = str(data)
    raw["tracking_dir"] = str(tmp / "mlruns")
    raw["acquisition"] = {**raw.get("acquisition", {}), **(acquisition or FAST_ACQUISITION)}
    raw["models"] = {**raw.get("models", {}), **(models or FAST_MODELS)}
    path = tmp / "campaign.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _no_global_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return make_campaign(tmp_path)


@pytest.fixture
def config(config_path: Path):
    from optimize.config import load_config

    return load_config(config_path)


def lab_batches(config, n: int, seed: int = 0, missing_water: float = 0.0) -> list[tuple[Path, bytes]]:
    """One in-memory batch of ``n`` virtual-lab experiments on Sobol recipes (for campaign_from_batches)."""
    from optimize.benchmark import virtual_lab_batch

    return [virtual_lab_batch(config, n, seed, missing_water)]


def kiln(*args: str, env: dict[str, str] | None = None):
    """The real CLI in-process (typer's runner), exceptions not swallowed."""
    from typer.testing import CliRunner

    from optimize.cli import app

    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (except the lock) -> its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".kiln.lock"
    }
