"""A lab's week on the mixed-halide campaign, through the real CLI, in a temporary copy of it.

    python benchmarks/lab_week.py            # prints each command and what kiln answered

Monday: `kiln suggest -n 6` on the empty campaign (a design that satisfies x_cl + x_br + x_i == 1); the virtual
lab (MixedHalideLab) runs the recipes, writes a spectrum per sample and measures PLQY; `kiln ingest --spectra`
reads emission and FWHM off the spectra. Water retention takes a day: Tuesday's batch holds only the ids and the
values (an amendment), and the Pareto set changes. Then a typo is corrected, with a reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kiln(*args: str, config: Path) -> str:
    cmd = [sys.executable, "-m", "optimize.cli", "--quiet", *args, "--config", str(config)]
    print("$ kiln " + " ".join(args), flush=True)
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={"COLUMNS": "100", "PATH": ""})
    if res.returncode:
        raise SystemExit(res.stderr)
    return res.stdout


def main() -> None:
    from optimize.campaign import rows_csv
    from optimize.virtual_lab import MixedHalideLab

    tmp = Path(tempfile.mkdtemp(prefix="kiln-week-"))
    raw = yaml.safe_load((ROOT / "configs" / "cspbx3_mixed_halide.yaml").read_text())
    raw.update(data_dir=str(tmp / "data"), tracking_dir=str(tmp / "mlruns"))
    raw["models"] = {**raw["models"], "candidates": ["gp-onehot", "constant"]}
    config = tmp / "mixed.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    lab, rng = MixedHalideLab(), np.random.default_rng(7)

    monday = json.loads(kiln("suggest", "-n", "6", "--format", "json", config=config))
    spectra = tmp / "spectrometer"
    spectra.mkdir()
    rows, water = [], {}
    for s in monday["suggestions"]:
        recipe = {k: v for k, v in s["inputs"].items()}
        run = {**recipe, "addition": recipe.get("addition") or None}
        measured = lab.measure(run, rng)
        (spectra / f"{s['id']}.csv").write_bytes(lab.spectrum(run, rng))
        row = {"experiment_id": s["id"], "batch": monday["batch"], **recipe}
        if isinstance(measured["plqy"], str):
            row.update(plqy=measured["plqy"][1:], plqy_qualifier=measured["plqy"][0])
        else:
            row["plqy"] = measured["plqy"]
        rows.append(row)
        water[s["id"]] = measured["water_retention"]
        total = sum(recipe[k] for k in ("x_cl", "x_br", "x_i"))
        print(
            f"  {s['id']}: x_cl {recipe['x_cl']:.2f} x_br {recipe['x_br']:.2f} x_i {recipe['x_i']:.2f} (sum {total:g})"
        )
    # the template's columns but emission and FWHM (read off the spectra); water retention empty until tomorrow
    columns = [
        "experiment_id",
        "batch",
        *[i["name"] for i in raw["inputs"]],
        "plqy",
        "plqy_qualifier",
        "water_retention",
    ]
    (tmp / "monday.csv").write_bytes(rows_csv(rows, columns))
    print(kiln("ingest", str(tmp / "monday.csv"), "--spectra", str(spectra), "--no-retrain", config=config))
    before = json.loads(kiln("history", "--format", "json", config=config))
    print(f"  Pareto set on Monday (all objectives measured): {before['pareto_set'] or 'none yet'}\n")

    tuesday = [{"experiment_id": k, "water_retention": v} for k, v in water.items()]
    (tmp / "tuesday.csv").write_bytes(rows_csv(tuesday, ["experiment_id", "water_retention"]))
    print(kiln("ingest", str(tmp / "tuesday.csv"), "--no-retrain", config=config))
    after = json.loads(kiln("history", "--format", "json", config=config))
    print(f"  Pareto set on Tuesday: {after['pareto_set']}\n")

    first = rows[0]["experiment_id"]
    fix = [
        {"experiment_id": first, "water_retention": round(water[first] * 0.5, 3), "reason": "sonicated twice as long"}
    ]
    (tmp / "fix.csv").write_bytes(rows_csv(fix, ["experiment_id", "water_retention", "reason"]))
    print(kiln("ingest", str(tmp / "fix.csv"), "--no-retrain", config=config))
    print(kiln("history", "--experiment", first, config=config))
    fixed = json.loads(kiln("history", "--format", "json", config=config))
    print(f"  Pareto set after the correction: {fixed['pareto_set']}")
    nxt = json.loads(kiln("suggest", "-n", "4", "--format", "json", config=config))
    sums = [sum(s["inputs"][k] for k in ("x_cl", "x_br", "x_i")) for s in nxt["suggestions"]]
    print(f"  next batch ({nxt['strategy']}): halide sums {sums}")
    print(f"(campaign kept in {tmp})")


if __name__ == "__main__":
    main()
