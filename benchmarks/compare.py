"""The side-by-side table of benchmarks/README.md from ``kiln benchmark --format json`` documents.

    kiln benchmark --strategies botorch,ax,baybe,random,sobol,tpe --format json > benchmarks/runs/virtual_lab.json
    kiln benchmark --config benchmarks/problems/suzuki_flow/config.yaml \\
        --lookup benchmarks/problems/suzuki_flow/table.csv --strategies botorch,ax,baybe,random --format json \\
        > benchmarks/runs/suzuki_flow.json
    python benchmarks/compare.py virtual_lab=benchmarks/runs/virtual_lab.json \
        suzuki_flow=benchmarks/runs/suzuki_flow.json ...

A document is named by its ``problem`` field, or by ``NAME=`` before its path (lookup tables named
``table.csv`` all report the problem ``table``).

Per problem and strategy, over the seeds: hypervolume / best known after 16 and 32 experiments (median, worst
seed, interquartile range), experiments to reach 80 % and 90 % of it (median and worst seed; "never" when a seed
did not within the run) and proposal seconds per batch (median over seeds of each seed's mean). Several
documents of the same problem (e.g. peers run apart from the rest) are merged by strategy and seed. ``botorch`` is
kiln's own loop with the problem config's defaults, shown as ``kiln``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

CHECKPOINTS = (16, 32)
LEVELS = (0.8, 0.9)


def _at(rows: list[dict], n: int) -> list[float]:
    """Per seed: the hypervolume once ``n`` experiments were run (the last batch at or before ``n``)."""
    out = []
    for seed in sorted({r["seed"] for r in rows}):
        hv = [r["hypervolume"] for r in rows if r["seed"] == seed and r["n_experiments"] <= n]
        out.append(max(hv) if hv else math.nan)
    return out


def _reach(rows: list[dict], level: float) -> list[float]:
    """Per seed: experiments until the hypervolume reached ``level`` (``inf`` if it never did)."""
    out = []
    for seed in sorted({r["seed"] for r in rows}):
        hit = [r["n_experiments"] for r in rows if r["seed"] == seed and r["hypervolume"] >= level]
        out.append(min(hit) if hit else math.inf)
    return out


def _seconds(rows: list[dict]) -> float:
    """Median over seeds of the proposal seconds per batch (the initial design is not proposed)."""
    per_seed = []
    for seed in sorted({r["seed"] for r in rows}):
        last = max((r for r in rows if r["seed"] == seed), key=lambda r: r["batch"])
        if last["batch"]:
            per_seed.append(last["seconds"] / last["batch"])
    return float(np.median(per_seed)) if per_seed else math.nan


def _n(v: float) -> str:
    return "never" if math.isinf(v) else f"{v:g}"


def stats(rows: list[dict]) -> dict:
    """The table's numbers for one strategy's rows on one problem."""
    out: dict = {"seeds": len({r["seed"] for r in rows})}
    for n in CHECKPOINTS:
        hv = np.array(_at(rows, n))
        q25, q50, q75 = np.percentile(hv, [25, 50, 75])
        out[f"hv{n}"] = {"median": float(q50), "worst": float(hv.min()), "q25": float(q25), "q75": float(q75)}
    for level in LEVELS:
        need = np.array(_reach(rows, level))
        out[f"reach{int(level * 100)}"] = {"median": float(np.median(need)), "worst": float(need.max())}
    out["seconds_per_batch"] = _seconds(rows)
    return out


def merged(docs: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """problem -> strategy -> rows, seed by seed: a later document's rows replace the rows of the same strategy
    and seed, and add the seeds it ran that earlier ones did not (`kiln benchmark --first-seed` extends a slow
    peer's study). Rows keep their own run's scale (the best known front: the table's, or on a simulator the dense
    design's plus what that run found, so runs differ slightly there)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for doc in docs:
        by = out.setdefault(doc["problem"], {})
        for name in dict.fromkeys(r["strategy"] for r in doc["results"]):
            rows = [r for r in doc["results"] if r["strategy"] == name]
            seeds = {r["seed"] for r in rows}
            kept = [r for r in by.get(name, []) if r["seed"] not in seeds]
            by[name] = sorted(kept + rows, key=lambda r: (r["seed"], r["batch"]))
    return out


def markdown(docs: list[dict]) -> str:
    lines = []
    for problem, by in merged(docs).items():
        kiln = by.get("botorch", [])
        kiln_seeds = {r["seed"] for r in kiln}
        for name in [n for n in by if n != "botorch"]:  # kiln on the same seeds as a strategy run on fewer
            seeds = {r["seed"] for r in by[name]}
            if kiln and seeds < kiln_seeds and f"botorch@{len(seeds)}" not in by:
                by = {**by, f"botorch@{len(seeds)}": [r for r in kiln if r["seed"] in seeds]}
        lines += [
            f"**{problem}**",
            "",
            "| strategy | seeds | after 16: median / worst [IQR] | after 32: median / worst [IQR] "
            "| to 80 %: median / worst | to 90 %: median / worst | s per batch |",
            "|---|---:|---|---|---|---|---:|",
        ]
        for name, rows in by.items():
            s = stats(rows)
            cells = ["{median:.2f} / {worst:.2f} [{q25:.2f}-{q75:.2f}]".format(**s[f"hv{n}"]) for n in CHECKPOINTS]
            reach = [
                f"{_n(s[f'reach{int(v * 100)}']['median'])} / {_n(s[f'reach{int(v * 100)}']['worst'])}" for v in LEVELS
            ]
            label = name.replace("botorch@", "kiln, same seeds as ").replace("botorch", "kiln")
            if label.startswith("kiln, same seeds"):
                label = f"kiln on seeds {', '.join(str(x) for x in sorted({r['seed'] for r in rows}))}"
            lines.append(
                f"| {label} | {s['seeds']} | " + " | ".join([*cells, *reach, f"{s['seconds_per_batch']:.1f}"]) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+", help="PATH or NAME=PATH of a kiln benchmark --format json document")
    args = ap.parse_args()
    docs = []
    for arg in args.json:
        name, _, path = arg.rpartition("=")
        doc = json.loads(Path(path).read_text())
        docs.append({**doc, "problem": name or doc["problem"]})
    print(markdown(docs))


if __name__ == "__main__":
    main()
