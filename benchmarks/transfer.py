"""Virtual-lab comparison for transfer: a new lab with the paper's rows as a prior campaign vs starting cold.

    python benchmarks/transfer.py --seeds 10 > benchmarks/transfer.md
    # or in parallel processes: --labs/--arms ... --runs-out part1.json, then --merge part*.json

The product loop (``botorch`` strategy: fit the configured surrogates, ``suggest_recipes``) with GP
surrogates (``gp-onehot``) and the default acquisition, 32 experiments per run, three arms:

- ``cold``: 8 Sobol recipes, then 6 suggested batches of 4 (the default start);
- ``prior``: the same, with ``prior: {data_dir: datasets/cspbbr3_sio2}`` (the paper's 13 rows);
- ``prior (no design)``: no Sobol design, 8 suggested batches of 4 from the first experiment on.

Two labs: ``paper`` is the virtual lab as calibrated on the paper; ``other`` is a lab whose furnace runs
30 C hotter than its set point and whose PLQY reads 0.8x the paper's, so the prior is informative but
wrong in its details. Scores: hypervolume of the true values of the recipes tried, divided by the best
known (the same denominator for every arm of a lab); experiments needed to reach 70 % / 80 % of it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_features import gp_config  # noqa: E402  (same directory: the same product-loop config)

from optimize.benchmark import BenchmarkSettings, experiments_to_reach, run_benchmark, virtual_lab_problem  # noqa: E402
from optimize.config import Prior  # noqa: E402
from optimize.virtual_lab import VirtualLab  # noqa: E402

LABS = {"paper": VirtualLab(), "other": VirtualLab(furnace_offset_c=30.0, plqy_scale=0.8)}
CHECKPOINTS = (8, 12, 16, 24, 32)


def _config(prior: bool):
    prior_setting = Prior(data_dir=ROOT / "datasets" / "cspbbr3_sio2", name="he2023") if prior else None
    return gp_config().model_copy(update={"prior": prior_setting})


ARMS = {  # name -> (with prior, initial Sobol recipes, suggested batches of 4)
    "cold": (False, 8, 6),
    "prior": (True, 8, 6),
    "prior (no design)": (True, 0, 8),
}


def _at(rows: list[dict], n: int) -> list[float]:
    """Per seed: the hypervolume after ``n`` experiments."""
    return [r["hypervolume"] for r in rows if r["n_experiments"] == n]


def run(labs: list[str], arms: list[str], seeds: tuple[int, ...]) -> dict:
    """``{lab: {arm: {"rows": [...], "best_hypervolume": ...}}}`` (rows normalized by their own run)."""
    out: dict = {}
    for lab_name in labs:
        for arm in arms:
            prior, n_initial, batches = ARMS[arm]
            settings = BenchmarkSettings(("botorch",), seeds, n_initial, batches, 4)
            res = run_benchmark(virtual_lab_problem(_config(prior), lab=LABS[lab_name]), settings)
            out.setdefault(lab_name, {})[arm] = {"rows": res.rows, "best_hypervolume": res.best_hypervolume}
            print(f"{lab_name}/{arm}: done, best hypervolume {res.best_hypervolume:.4f}", file=sys.stderr, flush=True)
    return out


def summarize(runs: dict) -> dict:
    """Per lab and arm: medians at the checkpoints and experiments to 70 / 80 %, with one denominator
    (the best hypervolume known to any arm of that lab)."""
    out: dict = {}
    for lab_name, arms in runs.items():
        best = max(a["best_hypervolume"] for a in arms.values())
        for arm, res in arms.items():
            rows = [{**r, "hypervolume": r["hypervolume"] * res["best_hypervolume"] / best} for r in res["rows"]]
            last = max(r["n_experiments"] for r in rows)
            out[f"{lab_name}/{arm}"] = {
                "rows": rows,
                "hv_median": {n: statistics.median(_at(rows, n)) for n in CHECKPOINTS if _at(rows, n)},
                "hv_final": _at(rows, last),
                "to_70": experiments_to_reach(rows, "botorch", 0.7),
                "to_80": experiments_to_reach(rows, "botorch", 0.8),
                "seconds_median": statistics.median(r["seconds"] for r in rows if r["n_experiments"] == last),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--labs", default=",".join(LABS), help="comma-separated: " + ", ".join(LABS))
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated: " + ", ".join(ARMS))
    ap.add_argument("--runs-out", type=Path, default=None, help="write the raw runs here (to --merge later)")
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=None,
        help="summarize raw runs written by --runs-out instead of running",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "transfer.json")
    args = ap.parse_args()
    if args.merge:
        runs: dict = {}
        for path in args.merge:
            for lab_name, arms in json.loads(path.read_text()).items():
                runs.setdefault(lab_name, {}).update(arms)
    else:
        runs = run(args.labs.split(","), args.arms.split(","), tuple(range(args.seeds)))
        if args.runs_out:
            args.runs_out.write_text(json.dumps(runs))
            return
    out = summarize(runs)
    args.out.write_text(json.dumps(out, indent=1))
    n_seeds = len({r["seed"] for r in next(iter(out.values()))["rows"]})
    head = " | ".join(f"after {n}" for n in CHECKPOINTS)
    print(f"| lab / arm (median over {n_seeds} seeds) | {head} | experiments to 70 % | to 80 % |")
    print("|---|" + "---:|" * (len(CHECKPOINTS) + 2))
    for key, r in out.items():
        cells = " | ".join(f"{r['hv_median'][n]:.3f}" if n in r["hv_median"] else "" for n in CHECKPOINTS)
        print(f"| {key} | {cells} | {r['to_70']:.0f} | {r['to_80']:.0f} |")


if __name__ == "__main__":
    main()
