"""Wall time of one model selection (``kiln ingest``'s cross-validation) on the few rows of a young campaign.

    python benchmarks/selection_time.py                                  # suzuki_flow, 8/12/16/24 rows, seeds 0-4
    python benchmarks/selection_time.py --problem lnp_formulation --rows 8,16 --seeds 3
    PYTHONPATH=/path/to/other/checkout python benchmarks/selection_time.py --label before

Per (rows, seed): that many random rows of the problem's lookup table, then ``select_models`` with every candidate
compared, in this process on one torch thread (as a benchmark cell runs it), after one untimed selection that pays
the imports. Prints one JSON document: per row count the median seconds over the seeds, every time, and a digest of
every fitted model's hyper-parameters and of the choices, so that two checkouts can be shown to fit the same models.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import numpy as np

    import optimize
    from optimize.benchmark import _batch_bytes, _records, lookup_problem
    from optimize.campaign import campaign_from_batches
    from optimize.config import load_config
    from optimize.models import select_models
    from optimize.parallel import one_torch_thread

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", default="suzuki_flow", help="a folder of benchmarks/problems")
    ap.add_argument("--rows", default="8,12,16,24", help="comma-separated row counts")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    folder = ROOT / "benchmarks" / "problems" / args.problem
    config = load_config(folder / "config.yaml")
    problem = lookup_problem(config, folder / "table.csv")

    def campaign(n: int, seed: int):
        recipes = _records(config, problem.pool.sample(n=n, random_state=seed))
        data = _batch_bytes(config, "b0", 0, recipes, [problem.measure(dict(r)) for r in recipes])
        return campaign_from_batches(config, [(Path(f"<{args.problem}-{n}-{seed}>"), data)])

    digest = hashlib.sha256()
    times: dict[str, list[float]] = {}
    with one_torch_thread():
        select_models(campaign(8, 10_000), workers=1)  # imports
        for n in map(int, args.rows.split(",")):
            for seed in range(args.seeds):
                history = campaign(n, seed)
                t0 = time.perf_counter()
                fitted, _ = select_models(history, workers=1)
                times.setdefault(str(n), []).append(time.perf_counter() - t0)
                for name in sorted(fitted.surrogates):
                    digest.update(fitted.reports[name].chosen.encode())
                    for model in (fitted.surrogates[name], (fitted.explorers or {}).get(name)):
                        for _, value in sorted(model.hyperparameters().items()) if model is not None else ():
                            digest.update(np.float64(value).tobytes())
    print(
        json.dumps(
            {
                "label": args.label,
                "code": str(Path(optimize.__file__).resolve().parents[1]),
                "problem": args.problem,
                "median_seconds": {n: round(statistics.median(v), 3) for n, v in times.items()},
                "seconds": {n: [round(t, 3) for t in v] for n, v in times.items()},
                "models_digest": digest.hexdigest(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
