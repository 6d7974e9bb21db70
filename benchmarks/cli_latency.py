"""Wall time of the commands a chemist types, through the real CLI in fresh processes, on virtual-lab data.

    python benchmarks/cli_latency.py                       # this checkout, the shipped config
    python benchmarks/cli_latency.py --models gp-onehot    # GP-only models
    python benchmarks/cli_latency.py --code /path/to/other/checkout --label before

Per run, in a temporary folder:

1. ``first``: a new campaign holding only the 13 seed rows; ``kiln suggest -n 4`` (what ``make demo`` runs: it
   selects the models first);
2. ``retrain``: the seed rows plus 100 virtual-lab experiments on random recipes (seed 0; cross-validation picked
   gradient boosting for PLQY there until the process kernel, GPs for every target since: the document names the
   models chosen), ingested without retraining, then ``kiln retrain``;
3. ``suggest``: ``kiln suggest -n 8`` four times in a row, so 0, 8, 16 and 24 suggestions are pending (each
   call starts as the previous returns, while that one's tracking process still logs its run); then, on a
   copy of that campaign taken after the retrain, with ``kiln serve`` running it (this checkout only), four more:
   the first (the server's first MLflow run and figure) and three with 8, 16 and 24 pending;
4. ``retrain-500`` (``--n500``): ``kiln retrain`` on the seed rows plus 500 random recipes, then ``kiln suggest
   -n 8`` twice (0 and 8 pending).

``--code`` runs another checkout's CLI (its ``optimize`` package first on ``PYTHONPATH``) with this
environment, for before/after tables. Prints one JSON document: the config, the models chosen, every wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's data generation (the timed CLI runs the --code checkout)
SEED_BATCH = ROOT / "datasets" / "cspbbr3_sio2" / "batches" / "000_seed_he2023.csv"


def make_campaign(folder: Path, models: str | None, code: Path = ROOT) -> Path:
    """The seed campaign of checkout ``code`` (its own config) in ``folder``."""
    import yaml

    raw = yaml.safe_load((code / "configs" / "cspbbr3_sio2.yaml").read_text())
    raw["data_dir"], raw["tracking_dir"] = "data", "mlruns"
    if models:
        raw["models"]["candidates"] = models.split(",")
    (folder / "data" / "batches").mkdir(parents=True)
    (folder / "data" / "batches" / SEED_BATCH.name).write_bytes(SEED_BATCH.read_bytes())
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def lab_batch(config_path: Path, n: int, seed: int, out: Path) -> Path:
    """``n`` virtual-lab experiments on uniformly random recipes (10 % not water-tested), as a batch file."""
    import numpy as np

    from optimize.benchmark import _batch_bytes, random_recipes
    from optimize.config import load_config
    from optimize.virtual_lab import VirtualLab

    config = load_config(config_path)
    rng = np.random.default_rng(seed)
    recipes = random_recipes(config, n, rng)
    results = [VirtualLab(missing_water=0.1).measure(r, rng) for r in recipes]
    out.write_bytes(_batch_bytes(config, "lab", 0, recipes, results))
    return out


def kiln(code: Path, *args: str) -> tuple[float, str]:
    """Run the CLI of checkout ``code`` in a fresh process (outside any checkout, so ``code`` is what is
    imported); wall seconds and stdout."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    # the `kiln` console script's entry point (older checkouts: the typer app itself)
    cmd = [sys.executable, "-c", "import optimize.cli as c; getattr(c, 'run', c.app)()", "-q", *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(config: Path, log: Path) -> tuple[subprocess.Popen, int, float]:
    """``kiln serve`` of this checkout on a free loopback port (no keys): the process, its port and the seconds
    until ``/health`` answered."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "optimize.cli", "serve", "--config", str(config), "--port", str(port)]
    cmd += ["--keys-file", str(log.parent / "no-keys.yaml")]
    server = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=log.parent)
    t0 = time.perf_counter()
    while True:
        if server.poll() is not None:
            raise RuntimeError("kiln serve exited:\n" + log.read_text()[-3000:])
        try:
            httpx.get(f"http://127.0.0.1:{port}/health")
            return server, port, time.perf_counter() - t0
        except httpx.TransportError:
            time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose CLI to time")
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--models", default=None, help="comma-separated candidates instead of the config's")
    ap.add_argument("--n500", action="store_true", help="also time kiln retrain at 500 experiments")
    args = ap.parse_args()
    out: dict = {"label": args.label, "code": str(args.code), "models": args.models or "shipped config", "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        first = make_campaign(Path(tmp) / "first", args.models, args.code)
        out["seconds"]["first suggest -n 4"] = kiln(args.code, "suggest", "-n", "4", "--config", str(first))[0]

        camp = make_campaign(Path(tmp) / "c100", args.models, args.code)
        batch = lab_batch(camp, 100, 0, Path(tmp) / "lab100.csv")
        kiln(args.code, "ingest", str(batch), "--no-retrain", "--config", str(camp))
        seconds, text = kiln(args.code, "retrain", "--format", "json", "--config", str(camp))
        out["seconds"]["retrain n=113"] = seconds
        out["models_chosen"] = {t["target"]: t["chosen"] for t in json.loads(text)["targets"]}
        served = Path(tmp) / "c100-served"  # the same campaign, fitted models included, for `kiln serve`
        shutil.copytree(camp.parent, served)
        for pending in (0, 8, 16, 24):
            seconds, text = kiln(args.code, "suggest", "-n", "8", "--format", "json", "--config", str(camp))
            out["seconds"][f"suggest -n 8, {pending} pending"] = seconds
            out.setdefault("suggest_inner", []).append(json.loads(text).get("seconds"))
        if args.code == ROOT:  # `kiln suggest` asks the campaign's running `kiln serve` (optimize.local_service)
            server, _, out["seconds"]["serve start"] = start_server(served / "campaign.yaml", Path(tmp) / "serve.log")
            try:
                for pending in (0, 8, 16, 24):
                    cmd = ("suggest", "-n", "8", "--format", "json", "--config", str(served / "campaign.yaml"))
                    seconds, text = kiln(args.code, *cmd)
                    doc = json.loads(text)
                    assert doc.get("served_by"), "kiln suggest did not ask the running server"
                    what = "first through kiln serve" if pending == 0 else f"{pending} pending"
                    out["seconds"][f"suggest -n 8 (kiln serve running), {what}"] = seconds
                    out.setdefault("served_inner", []).append(doc["seconds"])
            finally:
                server.terminate()
                server.wait(60)
        if args.n500:
            big = make_campaign(Path(tmp) / "c500", args.models, args.code)
            kiln(
                args.code,
                "ingest",
                str(lab_batch(big, 500, 0, Path(tmp) / "lab500.csv")),
                "--no-retrain",
                "--config",
                str(big),
            )
            seconds, text = kiln(args.code, "retrain", "--format", "json", "--config", str(big))
            out["seconds"]["retrain n=513"] = seconds
            out["models_chosen_513"] = {t["target"]: t["chosen"] for t in json.loads(text)["targets"]}
            for pending in (0, 8):
                seconds, text = kiln(args.code, "suggest", "-n", "8", "--format", "json", "--config", str(big))
                out["seconds"][f"suggest -n 8 at 513 rows, {pending} pending"] = seconds
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
