"""Virtual-lab comparisons for the lab features: furnace batches and outcome constraints, with vs without.

    python benchmarks/lab_features.py --seeds 5 > benchmarks/lab_features.md

Both use the product loop (``botorch`` strategy: fit the configured surrogates, ``suggest_recipes``) on
the virtual lab, GP surrogates (``gp-onehot``) and the default acquisition, 8 initial + 6 batches of 4,
the same initial design per seed for both arms:

- furnace: free recipes vs ``acquisition.furnace = {input: temperature_c, max_distinct: 1}``; reported:
  hypervolume / best known after 32 experiments, the number of furnace runs (distinct temperatures per
  batch, summed over the 6 batches), and the hypervolume each arm reached within the furnace arm's number
  of furnace runs (a furnace run, not a recipe, is what costs a calcination lab a day);
- outcome constraints ``water_retention >= 0.9`` and ``dispersibility >= 0.75``: the score is the
  hypervolume of *feasible* recipes (true values meet both bounds) for both arms; "without" runs the same
  loop with the constraints removed from the acquisition only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimize.benchmark import (  # noqa: E402
    BenchmarkSettings,
    BoTorchStrategy,
    register,
    run_benchmark,
    virtual_lab_problem,
)
from optimize.campaign import Campaign  # noqa: E402  (for the type annotation)
from optimize.config import Furnace, OutcomeConstraint, load_config  # noqa: E402

BOUNDS = (OutcomeConstraint(target="water_retention", min=0.9), OutcomeConstraint(target="dispersibility", min=0.75))


class UnconstrainedBoTorch(BoTorchStrategy):
    """The product loop whose acquisition does not know the outcome constraints (the metric still does)."""

    name = "botorch-unconstrained"

    def propose(self, history: Campaign, n: int, batch: int):
        blind = history.config.model_copy(update={"outcome_constraints": ()})
        return super().propose(dataclasses.replace(history, config=blind), n, batch)


def gp_config():
    """The seed config with GP models only (``gp-onehot``): the product loop these benchmarks run."""
    cfg = load_config(ROOT / "configs" / "cspbbr3_sio2.yaml")
    return cfg.model_copy(
        update={"models": cfg.models.model_copy(update={"candidates": ("gp-onehot",), "importance_repeats": 1})}
    )


def _recording(problem):
    """The problem, measuring as before but logging every recipe's temperature in call order."""
    temperatures: list[float] = []

    def measure(recipe):
        temperatures.append(recipe["temperature_c"])
        return problem.measure(recipe)

    return dataclasses.replace(problem, measure=measure), temperatures


def _furnace_runs(temperatures: list[float], settings: BenchmarkSettings) -> list[list[int]]:
    """Per run (seed), per batch: furnace runs so far (distinct temperatures per suggested batch, summed;
    the initial design, the same for both arms, is not counted)."""
    per_run = settings.n_initial + settings.batches * settings.batch_size
    runs = []
    for k in range(0, len(temperatures), per_run):
        chosen = temperatures[k + settings.n_initial : k + per_run]
        per_batch = [len(set(chosen[b : b + settings.batch_size])) for b in range(0, len(chosen), settings.batch_size)]
        runs.append([0] + [sum(per_batch[: i + 1]) for i in range(len(per_batch))])
    return runs


def _final(result, strategy: str) -> dict:
    last = [r for r in result.rows if r["strategy"] == strategy and r["batch"] == max(x["batch"] for x in result.rows)]
    hv = [r["hypervolume"] for r in last]
    return {
        "hv_median": statistics.median(hv),
        "hv": hv,
        "feasible_median": statistics.median(r["feasible"] for r in last),
        "furnace_runs_median": statistics.median(r["furnace_runs"] for r in last),  # 0 without a furnace setting
        "seconds_median": statistics.median(r["seconds"] for r in last),
        "rows": [r for r in result.rows if r["strategy"] == strategy],
    }


def _within(rows: list[dict], runs: list[list[int]], budget: int) -> list[float]:
    """Per seed: the hypervolume after the last batch that stayed within ``budget`` furnace runs."""
    out = []
    for seed, cum in enumerate(runs):
        hv = {r["batch"]: r["hypervolume"] for r in rows if r["seed"] == seed}
        out.append(max(hv[b] for b, used in enumerate(cum) if used <= budget))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", choices=("furnace", "constraints"), default=None, help="run one comparison")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "lab_features.json")
    args = ap.parse_args()
    settings = BenchmarkSettings(("botorch",), tuple(range(args.seeds)), 8, 6, 4)
    base = gp_config()
    out: dict = {}
    if args.only in (None, "furnace"):
        furnace = base.model_copy(
            update={"acquisition": base.acquisition.model_copy(update={"furnace": Furnace(input="temperature_c")})}
        )
        runs = {}
        for arm, cfg in (("free", base), ("furnace", furnace)):
            problem, temperatures = _recording(virtual_lab_problem(cfg))
            out[f"furnace/{arm}"] = _final(run_benchmark(problem, settings), "botorch")
            runs[arm] = _furnace_runs(temperatures, settings)
            out[f"furnace/{arm}"]["furnace_runs"] = [r[-1] for r in runs[arm]]
            out[f"furnace/{arm}"]["furnace_runs_median"] = statistics.median(r[-1] for r in runs[arm])
            print(
                f"furnace/{arm}: hv {[round(h, 3) for h in out[f'furnace/{arm}']['hv']]}", file=sys.stderr, flush=True
            )
        budget = int(out["furnace/furnace"]["furnace_runs_median"])
        for arm in runs:
            within = _within(out[f"furnace/{arm}"]["rows"], runs[arm], budget)
            out[f"furnace/{arm}"].update(
                budget=budget, hv_within_budget=within, hv_within_budget_median=statistics.median(within)
            )
    if args.only in (None, "constraints"):
        constrained = base.model_copy(update={"outcome_constraints": BOUNDS})
        register(UnconstrainedBoTorch)
        both = BenchmarkSettings(("botorch", UnconstrainedBoTorch.name), tuple(range(args.seeds)), 8, 6, 4)
        result = run_benchmark(virtual_lab_problem(constrained), both)
        out["constraints/with"] = _final(result, "botorch")
        out["constraints/without"] = _final(result, UnconstrainedBoTorch.name)
        print(
            f"constraints: hv {out['constraints/with']['hv']} vs {out['constraints/without']['hv']}",
            file=sys.stderr,
            flush=True,
        )
    args.out.write_text(json.dumps(out, indent=1))
    print(
        f"| comparison (median over {args.seeds} seeds) | hypervolume / best after 32 experiments | feasible recipes"
        " | furnace runs | hypervolume within the furnace arm's runs | proposal s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for key, r in out.items():
        within = f"{r['hv_within_budget_median']:.3f} ({r['budget']} runs)" if "budget" in r else ""
        print(
            f"| {key} | {r['hv_median']:.3f} | {r['feasible_median']:.0f} | {r['furnace_runs_median']:.0f}"
            f" | {within} | {r['seconds_median']:.0f} |"
        )


if __name__ == "__main__":
    main()
