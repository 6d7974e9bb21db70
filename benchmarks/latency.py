"""Latency of kiln's fit and suggest vs a default-settings BoTorch loop, on virtual-lab campaigns.

    python benchmarks/latency.py                       # the full grid (tens of minutes)
    python benchmarks/latency.py --n 100 --q 8 --repeats 1
    python benchmarks/latency.py --pending 0,16 ...    # suggest jobs also with 16 random recipes pending

For each n (experiments) a campaign is simulated by the virtual lab (Sobol recipes, noisy, censored
PLQY, 10 % of samples not water-tested). Every measurement runs in a fresh process, so peak memory
(max RSS) is that of one job. Measured:

- ``retrain``: what ``kiln retrain``/``kiln ingest`` does: model selection by CV over the config's
  candidates (Optuna for GBM), fit of the winners; its result is cached by data version.
- ``ingest``: what ``kiln ingest`` does after 8 more experiments: the ``retrain`` job's models (same n
  and seed) are the warm start and the kept choice (``models.reselect_growth``), refit on n + 8 rows;
- ``fit-gp``: fitting the four GP surrogates alone, cold (what suggest costs when the cache is cold
  and GPs are the only candidates);
- ``fit-gp-warm``: the same fit warm-started from GPs fitted on the first n - 8 rows (the previous
  batch), as ``kiln ingest`` does with ``models.warm_start: true`` (off by default); the warm-up fit is
  not timed;
- ``suggest``: what ``kiln suggest -n q`` does after a retrain: load the cached models (the JSON the
  ``retrain`` job of the same n and seed wrote), propose q recipes.
- ``retrain-gp`` / ``suggest-gp``: the same with GP models only (``gp-onehot`` for every target), for sizes
  where the default selection (GBM tuning, CV of five candidates) takes too long to repeat;
- ``baseline``: plain BoTorch with default settings: a ``MixedSingleTaskGP`` per target in a
  ``ModelListGP``, ``qLogNoisyExpectedHypervolumeImprovement`` (128 MC samples), ``optimize_acqf_mixed``
  over the categorical combinations with ``num_restarts=10, raw_samples=512``.

Results go to ``benchmarks/latency.json`` and a Markdown table on stdout (median of the repeats).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "configs" / "cspbbr3_sio2.yaml"
CACHE = ROOT / "benchmarks" / ".latency_cache"  # models the retrain jobs fit, read by the suggest jobs


def simulated_campaign(config, n: int, seed: int = 0):
    """A campaign of ``n`` virtual-lab experiments (in memory, validated like files on disk)."""
    from optimize.benchmark import virtual_lab_batch
    from optimize.campaign import campaign_from_batches

    return campaign_from_batches(config, [virtual_lab_batch(config, n, seed, missing_water=0.1)])


def _gp_only(config, warm_start: bool = False):
    return config.model_copy(
        update={"models": config.models.model_copy(update={"candidates": ("gp-onehot",), "warm_start": warm_start})}
    )


def with_pending(config, campaign, pending: int, seed: int):
    """``campaign`` with ``pending`` suggestions (uniformly random recipes) in its ledger, not yet ingested."""
    import numpy as np
    import pandas as pd

    from optimize.benchmark import random_recipes
    from optimize.campaign import SUGGESTION_ID

    if pending == 0:
        return campaign
    recipes = random_recipes(config, pending, np.random.default_rng(1000 + seed))
    ledger = pd.DataFrame([{SUGGESTION_ID: f"P-{i + 1}", **r} for i, r in enumerate(recipes)])
    return dataclasses.replace(campaign, ledger=ledger)


def worker(kind: str, n: int, q: int, seed: int, pending: int = 0) -> dict:
    import torch

    from optimize.config import load_config

    torch.manual_seed(seed)
    config = load_config(CONFIG)
    out: dict = {"kind": kind, "n": n, "q": q, "seed": seed, "pending": pending}
    cached = CACHE / f"n{n}-seed{seed}.json"
    if kind in ("retrain-gp", "suggest-gp"):  # not fit-gp, which makes its own GP-only config
        config, kind, cached = _gp_only(config), kind.removesuffix("-gp"), CACHE / f"n{n}-seed{seed}-gp.json"
    campaign = simulated_campaign(config, n, seed)
    t0 = time.perf_counter()
    if kind == "retrain":
        from optimize.models import select_models

        fitted, _ = select_models(campaign)
        out["seconds"] = time.perf_counter() - t0
        out["models"] = {k: r.chosen for k, r in fitted.reports.items()}
        CACHE.mkdir(exist_ok=True)
        cached.write_text(json.dumps(fitted.to_json()))
    elif kind == "ingest":
        from optimize.models import FittedModels, select_models

        previous = FittedModels.from_json(json.loads(cached.read_text()))
        grown = simulated_campaign(config, n + 8, seed)
        assert grown.experiments.iloc[:n][list(config.input_names)].equals(
            campaign.experiments[list(config.input_names)]
        )
        t0 = time.perf_counter()
        fitted, _ = select_models(grown, warm=previous, reselect=False)
        out["seconds"] = time.perf_counter() - t0
        out["models"] = {k: r.chosen for k, r in fitted.reports.items()}
    elif kind in ("fit-gp", "fit-gp-warm"):
        from optimize.models import fit_models

        gp = _gp_only(config, warm_start=kind == "fit-gp-warm")
        warm = None
        if kind == "fit-gp-warm":
            earlier = dataclasses.replace(campaign, config=gp, experiments=campaign.experiments.iloc[: n - 8])
            warm = fit_models(earlier)
            t0 = time.perf_counter()
        fit_models(dataclasses.replace(campaign, config=gp), warm=warm)
        out["seconds"] = time.perf_counter() - t0
    elif kind == "suggest":
        from optimize.acquisition import suggest_recipes
        from optimize.models import FittedModels, fit_models, select_models

        if cached.exists():
            doc = json.loads(cached.read_text())
        elif config.models.candidates == ("gp-onehot",):  # one candidate: nothing to select, fit it (untimed)
            doc = json.loads(json.dumps(fit_models(campaign).to_json()))
        else:
            doc = json.loads(json.dumps(select_models(campaign)[0].to_json()))
        t0 = time.perf_counter()
        fitted = FittedModels.from_json(doc)
        out["load_seconds"] = time.perf_counter() - t0
        suggest_recipes(with_pending(config, campaign, pending, seed), fitted, q, seed)
        out["seconds"] = time.perf_counter() - t0
        out["models"] = {k: r.chosen for k, r in fitted.reports.items()}
    elif kind == "baseline":
        out["seconds"] = baseline(config, campaign, q, seed)
    else:
        raise ValueError(kind)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def baseline(config, campaign, q: int, seed: int) -> float:
    """Default-settings BoTorch on the same data; returns the wall time of fit + optimize."""
    import torch
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import MixedSingleTaskGP, ModelListGP
    from botorch.optim import optimize_acqf_mixed
    from gpytorch.mlls import SumMarginalLogLikelihood

    from optimize.acquisition import enumerate_combos
    from optimize.kernels import use_prebuilt_kernel
    from optimize.models import encoder_for

    use_prebuilt_kernel()  # the same qLogNEHVI kernel as kiln's, and no 40-50 s compile in the timing

    t0 = time.perf_counter()
    enc = encoder_for(config)
    models = []
    for t in config.targets:
        rows = campaign.measured(t.name)
        X = enc.encode(rows[list(config.input_names)])
        Y = torch.as_tensor(t.objective(rows[t.name].to_numpy(float)), dtype=torch.double).unsqueeze(-1)
        models.append(MixedSingleTaskGP(X, Y, cat_dims=enc.cat_dims))
    model = ModelListGP(*models)
    fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
    X_all = enc.encode(campaign.experiments[list(config.input_names)])
    ref = [t.objective_reference for t in config.targets]
    acqf = qLogNoisyExpectedHypervolumeImprovement(model=model, ref_point=ref, X_baseline=X_all, prune_baseline=True)
    d = X_all.shape[-1]
    bounds = torch.stack([torch.zeros(d), torch.ones(d)]).double()
    for j in enc.cat_dims:
        bounds[1, j] = enc.features[j].not_applicable
    fixed = [c.fixed for c in enumerate_combos(config, enc)]
    optimize_acqf_mixed(acqf, bounds=bounds, q=q, num_restarts=10, raw_samples=512, fixed_features_list=fixed)
    return time.perf_counter() - t0


def measure(kind: str, n: int, q: int, seed: int, timeout: float, pending: int = 0) -> dict:
    """One job in a fresh process (its own session); on timeout the whole process group is killed, including the
    processes a retrain forks for model selection."""
    cmd = [sys.executable, __file__, "--worker", kind, str(n), str(q), str(seed), str(pending)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"kind": kind, "n": n, "q": q, "seed": seed, "pending": pending, "seconds": None, "timeout": timeout}
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, stdout, stderr)
    out = json.loads(stdout.strip().splitlines()[-1])
    out["process_seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="20,100,500")
    ap.add_argument("--q", default="1,4,8,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-q", default="8", help="q values to run the (slow) baseline at")
    ap.add_argument("--baseline-n", default="20,100,500", help="n values to run the baseline at")
    ap.add_argument("--baseline-repeats", type=int, default=2)
    ap.add_argument("--pending", default="0", help="pending suggestions (random recipes) for the suggest jobs")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "latency.json")
    ap.add_argument(
        "--kinds",
        default="retrain,ingest,fit-gp,fit-gp-warm,suggest,baseline",  # also: retrain-gp, suggest-gp
        help="jobs to run (suggest and ingest read the retrain jobs' cached models)",
    )
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, n, q, seed, pending = args.worker
        print(json.dumps(worker(kind, int(n), int(q), int(seed), int(pending))))
        return
    ns = [int(x) for x in args.n.split(",")]
    qs = [int(x) for x in args.q.split(",")]
    pendings = [int(x) for x in args.pending.split(",")]
    jobs = []
    for n in ns:
        jobs += [("retrain", n, 0, 0), ("ingest", n, 0, 0), ("fit-gp", n, 0, 0), ("fit-gp-warm", n, 0, 0)]
        jobs += [("suggest", n, q, p) for q in qs for p in pendings]
        jobs += [("retrain-gp", n, 0, 0)] + [("suggest-gp", n, q, p) for q in qs for p in pendings]
        jobs += [
            ("baseline", n, q, 0)
            for q in (int(x) for x in args.baseline_q.split(","))
            if n in {int(x) for x in args.baseline_n.split(",")}
        ]
    kinds = set(args.kinds.split(","))
    jobs = [j for j in jobs if j[0] in kinds]
    rows = []
    for kind, n, q, pending in jobs:
        for seed in range(args.repeats if kind != "baseline" else args.baseline_repeats):
            r = measure(kind, n, q, seed, args.timeout, pending)
            rows.append(r)
            args.out.write_text(json.dumps(rows, indent=1))  # after every job: an interrupted run keeps its results
            print(
                f"{kind:8s} n={n:4d} q={q:2d} pending={pending:2d} seed={seed}: {r.get('seconds')} s,"
                f" {r.get('peak_mb', 0):.0f} MB",
                file=sys.stderr,
                flush=True,
            )
    print(table(rows))


def table(rows: list[dict]) -> str:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["kind"], r["n"], r["q"], r.get("pending", 0)), []).append(r)
    lines = [
        "| job | n | q | pending | median s | runs | peak MB | models chosen |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (kind, n, q, pending), g in groups.items():
        secs = [r["seconds"] for r in g if r.get("seconds") is not None]
        med = f"{statistics.median(secs):.1f}" if len(secs) == len(g) else f"> {g[0]['timeout']:.0f} (timeout)"
        mb = statistics.median([r.get("peak_mb", 0) for r in g])
        models = ", ".join(f"{k} {v}" for k, v in g[0].get("models", {}).items())
        lines.append(
            f"| {kind} | {n} | {q if kind in ('suggest', 'suggest-gp', 'baseline') else ''}"
            f" | {pending if kind.startswith('suggest') else ''} | {med} | {len(g)}"
            f" | {mb:.0f} | {models} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
