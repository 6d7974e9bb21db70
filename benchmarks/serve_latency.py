"""Latency of ``kiln serve`` as a robot or LIMS sees it, over HTTP on loopback, with the shipped config.

    python benchmarks/serve_latency.py [--rows 100] [--models M] [--out benchmarks/serve_latency.json]

In a temporary folder: the seed rows plus ``--rows`` virtual-lab experiments on random recipes (seed 0: with
the shipped config cross-validation picks gradient boosting for PLQY), fitted once by ``kiln retrain`` (not
timed); then ``kiln serve`` on a free loopback port, and:

1. ``suggest``: ``POST /suggestions {"n": 8}`` five times in a row (8 to 40 suggestions pending), after one
   warm-up call (0 pending; the server's first MLflow run and matplotlib import); ``--gap S`` waits S seconds
   before each (a robot runs its experiments in between; back to back, the server defers each call's MLflow
   logging until a quiet second, see ``optimize.live``);
2. ``load``: 4 clients x 100 requests, alternating ``GET /history`` and ``POST /predictions`` (4 recipes):
   p50, p99 and errors;
3. ``ingest``: 8 quick ``POST /batches`` of one row each, then the retrains they caused (coalesced).

Prints one JSON document (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cli_latency import kiln, lab_batch, make_campaign, start_server  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100, help="virtual-lab experiments besides the 13 seed rows")
    ap.add_argument("--models", help="comma-separated candidates instead of the shipped config's")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument(
        "--gap", type=float, default=0.0, help="seconds between suggestions (the previous one's MLflow logging ends)"
    )
    args = ap.parse_args()

    from optimize.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = make_campaign(folder, args.models)
        batch = lab_batch(config, args.rows, 0, folder / "lab.csv")
        kiln(ROOT, "ingest", str(batch), "--no-retrain", "--config", str(config))
        retrain_s, _ = kiln(ROOT, "retrain", "--config", str(config), "--format", "json")
        cfg = load_config(config)
        server, port, startup = start_server(config, folder / "serve.log")
        base = f"http://127.0.0.1:{port}/campaigns/{cfg.name}"
        try:
            client = httpx.Client(timeout=600)
            t0 = time.perf_counter()
            warm = client.post(base + "/suggestions", json={"n": 8, "seed": 99}).json()
            first = time.perf_counter() - t0
            suggest, inside = [], []
            for seed in range(5):
                time.sleep(args.gap)
                t0 = time.perf_counter()
                doc = client.post(base + "/suggestions", json={"n": 8, "seed": seed}).json()
                suggest.append(time.perf_counter() - t0)
                inside.append(doc["seconds"])
            recipes = [s["inputs"] for s in warm["suggestions"][:4]]
            timings: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()

            def hammer(c: int) -> None:
                with httpx.Client(timeout=60) as h:
                    for i in range(100):
                        t = time.perf_counter()
                        if (i + c) % 2:
                            res = h.get(base + "/history")
                        else:
                            res = h.post(base + "/predictions", json={"recipes": recipes})
                        with lock:
                            timings.append(time.perf_counter() - t)
                            if res.status_code != 200:
                                errors.append(res.text[:200])

            t0 = time.perf_counter()
            threads = [threading.Thread(target=hammer, args=(c,)) for c in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            load_s = time.perf_counter() - t0
            before = client.get(base).json()["retrain"]["done"]
            t0 = time.perf_counter()
            for i, s in enumerate(warm["suggestions"]):
                row = {"experiment_id": s["id"], "batch": warm["batch"], **s["inputs"], "plqy": 40.0 + i}
                client.post(base + "/batches", json={"rows": [row]}).raise_for_status()
            ingest_s = time.perf_counter() - t0
            while (state := client.get(base).json()["retrain"])["running"] or state["queued"]:
                time.sleep(1)
            summary = client.get(base).json()
        finally:
            server.terminate()
            server.wait(30)
    doc = {
        "rows": 13 + args.rows,
        "gap_s": args.gap,
        "models": summary["models"]["chosen"],
        "retrain_cli_s": round(retrain_s, 1),
        "server_start_s": round(startup, 2),
        "first_suggest_8_s": round(first, 2),
        "suggest_8_s": [round(s, 2) for s in suggest],
        "suggest_8_median_s": round(statistics.median(suggest), 2),
        "suggest_inside_s": inside,
        "load": {
            "requests": len(timings),
            "seconds": round(load_s, 1),
            "p50_ms": round(1000 * percentile(timings, 0.5), 1),
            "p99_ms": round(1000 * percentile(timings, 0.99), 1),
            "errors": len(errors),
        },
        "ingest_8_s": round(ingest_s, 2),
        "retrains_after_8_ingests": state["done"] - before,
        "models_data_version_after": summary["models"]["data_version"],
        "data_version_after": summary["data_version"],
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
