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

Is a variant (a patched loop, another config) better than a baseline, or did it move stalls between seeds? With
``--baseline`` the documents given are the variant's and each problem's strategies are paired seed by seed with the
baseline's (documents merged as above):

    python benchmarks/compare.py --baseline benchmarks/runs/study_explorer/ucb1_virtual_lab_50.json \
        --baseline benchmarks/runs/study_explorer/ucb1_virtual_lab_seeds50-99.json variant_0-49.json \
        variant_50-99.json

Per problem and strategy, on the seeds both ran, after 32 experiments (``--at``): the seeds at or above 80 % of the
best known hypervolume (``--level``) for each, how many the variant lifts to it and how many it drops below, the
two-sided sign test of those (exact binomial), the mean and median of the differences and the two-sided Wilcoxon
signed-rank test of them, and each side's median and worst seed. Rows keep their own run's scale (see
:func:`merged`): on a simulator, run both sides with the same seeds and strategies if differences of a few
thousandths matter. ``--versus ax`` pairs every strategy of
each problem with Ax's instead, on the seeds both ran (``kiln`` names kiln's own loop).
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


def _kiln(name: str) -> str:
    """A strategy's name as the tables show it: kiln's own loop (``botorch``) as ``kiln``."""
    return name.replace("botorch", "kiln")


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
            label = _kiln(name.replace("botorch@", "kiln, same seeds as "))
            if label.startswith("kiln, same seeds"):
                label = f"kiln on seeds {', '.join(str(x) for x in sorted({r['seed'] for r in rows}))}"
            lines.append(
                f"| {label} | {s['seeds']} | " + " | ".join([*cells, *reach, f"{s['seconds_per_batch']:.1f}"]) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def paired(base: list[dict], variant: list[dict], at: int = 32, level: float = 0.8) -> dict:
    """A variant's rows against a baseline's (one strategy on one problem), on the seeds both ran: hypervolume /
    best after ``at`` experiments seed by seed, and whether the variant moves seeds across ``level`` one way more
    than the other (sign test) or shifts them (Wilcoxon signed-rank test); both tests two-sided."""
    from scipy.stats import binomtest, wilcoxon

    seeds = sorted({r["seed"] for r in base} & {r["seed"] for r in variant})
    if not seeds:
        raise ValueError("the baseline and the variant have no seed in common")
    b = np.array(_at([r for r in base if r["seed"] in seeds], at))
    v = np.array(_at([r for r in variant if r["seed"] in seeds], at))
    lifted = int(((v >= level) & (b < level)).sum())
    dropped = int(((v < level) & (b >= level)).sum())
    diff = v - b
    return {
        "seeds": len(seeds),
        "at": at,
        "level": level,
        "baseline_reached": int((b >= level).sum()),
        "variant_reached": int((v >= level).sum()),
        "lifted": lifted,
        "dropped": dropped,
        "sign_test_p": float(binomtest(lifted, lifted + dropped).pvalue) if lifted + dropped else 1.0,
        "mean_difference": float(diff.mean()),
        "median_difference": float(np.median(diff)),
        "wilcoxon_p": float(wilcoxon(v, b).pvalue) if np.any(diff != 0) else 1.0,
        "baseline_median": float(np.median(b)),
        "variant_median": float(np.median(v)),
        "baseline_worst": float(b.min()),
        "variant_worst": float(v.min()),
    }


def _paired_table(pairs: list[tuple[str, str, list[dict], list[dict]]], at: int, level: float) -> str:
    """Markdown rows of :func:`paired` for (problem, label, baseline rows, variant rows)."""
    lines = [
        f"| problem | strategy | seeds | >= {level:g} after {at}: baseline / variant | lifted / dropped | sign test p "
        "| difference: mean / median | Wilcoxon p | median: baseline -> variant | worst: baseline -> variant |",
        "|---|---|---:|---|---|---:|---|---:|---|---|",
    ]
    for problem, label, base, variant in pairs:
        p = paired(base, variant, at, level)
        lines.append(
            f"| {problem} | {label} | {p['seeds']} | {p['baseline_reached']} / {p['variant_reached']} | "
            f"{p['lifted']} / {p['dropped']} | {p['sign_test_p']:.2f} | "
            f"{p['mean_difference']:+.3f} / {p['median_difference']:+.3f} | {p['wilcoxon_p']:.2f} | "
            f"{p['baseline_median']:.3f} -> {p['variant_median']:.3f} | "
            f"{p['baseline_worst']:.3f} -> {p['variant_worst']:.3f} |"
        )
    return "\n".join(lines)


def paired_markdown(baseline: list[dict], variant: list[dict], at: int = 32, level: float = 0.8) -> str:
    """The table of :func:`paired` for every (problem, strategy) both sides ran."""
    base, var = merged(baseline), merged(variant)
    pairs = [
        (problem, _kiln(name), base[problem][name], rows)
        for problem, by in var.items()
        for name, rows in by.items()
        if name in base.get(problem, {})
    ]
    if not pairs:
        raise ValueError("no problem and strategy in common between the baseline and the variant")
    return _paired_table(pairs, at, level)


def versus_markdown(docs: list[dict], against: str, at: int = 32, level: float = 0.8) -> str:
    """The table of :func:`paired` for every strategy of every problem against the strategy ``against`` (the
    baseline) of the same problem, seed by seed (e.g. kiln against Ax: ``--versus ax``)."""
    pairs = [
        (problem, f"{_kiln(name)} vs {_kiln(against)}", by[against], rows)
        for problem, by in merged(docs).items()
        if against in by
        for name, rows in by.items()
        if name != against and {r["seed"] for r in rows} & {r["seed"] for r in by[against]}
    ]
    if not pairs:
        raise ValueError(f"no problem has the strategy {against!r} and another one on the same seeds")
    return _paired_table(pairs, at, level)


def _load(arg: str) -> dict:
    name, _, path = arg.rpartition("=")
    doc = json.loads(Path(path).read_text())
    return {**doc, "problem": name or doc["problem"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+", help="PATH or NAME=PATH of a kiln benchmark --format json document")
    ap.add_argument(
        "--baseline", action="append", default=[], help="a baseline's document (repeat for more): pair seed by seed"
    )
    ap.add_argument("--versus", help="pair every strategy with this one (e.g. ax), seed by seed, on each problem")
    ap.add_argument("--at", type=int, default=32, help="experiments at which to pair (--baseline, --versus)")
    ap.add_argument("--level", type=float, default=0.8, help="hypervolume / best that counts as reached")
    args = ap.parse_args()
    docs = [_load(arg) for arg in args.json]
    if args.baseline and args.versus:
        ap.error("give --baseline or --versus, not both")
    if args.baseline:
        print(paired_markdown([_load(arg) for arg in args.baseline], docs, args.at, args.level))
    elif args.versus:
        print(versus_markdown(docs, "botorch" if args.versus == "kiln" else args.versus, args.at, args.level))
    else:
        print(markdown(docs))


if __name__ == "__main__":
    main()
