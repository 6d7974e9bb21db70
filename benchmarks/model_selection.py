"""Cross-validated model comparison per target, on the seed data and on a simulated virtual-lab campaign.

    python benchmarks/model_selection.py            # seed data and 100 virtual-lab rows
    python benchmarks/model_selection.py --n 50

Prints one Markdown table per data set: RMSE / NLPD / 90 % coverage per candidate, and the winner.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def table(fitted) -> str:
    labels = list(dict.fromkeys(label for r in fitted.reports.values() for label in r.cv))
    lines = [
        "| target | rows | " + " | ".join(f"{label} RMSE / NLPD / cov90" for label in labels) + " | chosen |",
        "|---|---:|" + "---|" * len(labels) + "---|",
    ]
    for r in fitted.reports.values():
        cells = []
        for label in labels:
            sc = r.cv.get(label)
            cells.append("-" if sc is None else f"{sc['rmse']:.3g} / {sc['nlpd']:.3g} / {sc['coverage90']:.2f}")
        lines.append(f"| {r.target} | {r.n_rows} | " + " | ".join(cells) + f" | {r.chosen} |")
    return "\n".join(lines)


def main() -> None:
    import torch
    from latency import simulated_campaign

    from optimize.campaign import load_campaign
    from optimize.config import load_config
    from optimize.models import select_models

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    config = load_config(ROOT / "configs" / "cspbbr3_sio2.yaml")
    for name, campaign in (
        ("seed data (He et al. 2023)", load_campaign(config)),
        (f"virtual lab, {args.n} rows", simulated_campaign(config, args.n)),
    ):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        fitted, _ = select_models(campaign)
        print(f"\n### {name} ({time.perf_counter() - t0:.0f} s)\n\n{table(fitted)}")


if __name__ == "__main__":
    main()
