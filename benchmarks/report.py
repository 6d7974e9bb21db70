"""Turn ``kiln benchmark --format json`` output into a Markdown table and a PNG of the curves.

kiln benchmark --format json > run.json
python benchmarks/report.py run.json --png benchmarks/hypervolume_curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def markdown(doc: dict) -> str:
    from optimize.benchmark import experiments_to_reach

    summary, rows = doc["summary"], doc["results"]
    names = list(dict.fromkeys(s["strategy"] for s in summary))
    by = {(s["strategy"], s["batch"]): s for s in summary}
    batches = sorted({s["batch"] for s in summary})
    head = "| experiments | " + " | ".join(names) + " |"
    lines = [head, "|---:|" + "---:|" * len(names)]
    for b in batches:
        n = by[(names[0], b)]["n_experiments"]
        cells = [
            f"{by[(s, b)]['hv_median']:.3f} [{by[(s, b)]['hv_q25']:.3f}, {by[(s, b)]['hv_q75']:.3f}]" for s in names
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for level in (0.5, 0.7, 0.9):
        cells = [f"{experiments_to_reach(rows, s, level):g}" for s in names]
        lines.append(f"| experiments to {level:.0%} (median) | " + " | ".join(cells) + " |")
    last = batches[-1]
    lines.append(
        "| wall time of all proposals, s (median) | "
        + " | ".join(f"{by[(s, last)]['seconds_median']:.1f}" for s in names)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    doc = json.loads(args.json.read_text())
    print(markdown(doc))
    if args.png:
        from optimize.plots import benchmark_figure

        fig = benchmark_figure(
            doc["summary"], args.title or f"{doc['problem']}: median and IQR over {len(doc['settings']['seeds'])} seeds"
        )
        fig.savefig(args.png, dpi=120)


if __name__ == "__main__":
    main()
