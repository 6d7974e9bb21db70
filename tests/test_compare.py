"""benchmarks/compare.py: the side-by-side table's numbers, merged runs, and a variant paired with a baseline."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("kiln_bench_compare", ROOT / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(strategy: str, finals: dict[int, float], at16: float = 0.1) -> list[dict]:
    """A run of 8 initial recipes then 6 batches of 4 per seed: hypervolume ``at16`` after 16 experiments and
    ``finals[seed]`` from 24 on; 6 s of proposals per seed."""
    rows = []
    for seed, final in finals.items():
        for batch, n in enumerate(range(8, 33, 4)):
            hv = 0.0 if n < 16 else at16 if n < 24 else final
            rows.append(
                {"strategy": strategy, "seed": seed, "batch": batch, "n_experiments": n, "hypervolume": hv,
                 "seconds": float(batch)}
            )  # fmt: skip
    return rows


def test_table_numbers_per_strategy(compare):
    rows = _rows("botorch", {0: 0.95, 1: 0.5, 2: 0.85, 3: 0.9})
    s = compare.stats(rows)
    assert s["seeds"] == 4
    assert s["hv32"]["median"] == pytest.approx(0.875) and s["hv32"]["worst"] == 0.5
    assert s["hv16"]["median"] == pytest.approx(0.1)
    assert s["reach80"] == {"median": 24.0, "worst": math.inf}  # seed 1 never gets there
    assert math.isinf(s["reach90"]["median"])  # 24, 24, never, never: the median seed did not get there
    assert s["seconds_per_batch"] == pytest.approx(1.0)


def test_a_later_document_replaces_and_extends_seeds(compare):
    first = {"problem": "p", "results": _rows("ax", {0: 0.2, 1: 0.3})}
    later = {"problem": "p", "results": _rows("ax", {1: 0.9, 2: 0.4})}
    rows = compare.merged([first, later])["p"]["ax"]
    assert compare._at(rows, 32) == [0.2, 0.9, 0.4]
    assert "| ax | 3 |" in compare.markdown([first, later])


def test_a_variant_is_paired_with_the_baseline_seed_by_seed(compare):
    base = _rows("botorch", {s: (0.3 if s < 6 else 0.95) for s in range(12)})
    lifted = _rows("botorch", {s: 0.9 for s in range(12)})
    p = compare.paired(base, lifted)
    assert (p["seeds"], p["baseline_reached"], p["variant_reached"]) == (12, 6, 12)
    assert (p["lifted"], p["dropped"]) == (6, 0)
    assert p["sign_test_p"] == pytest.approx(2 / 2**6)  # all 6 discordant seeds one way, two-sided
    assert p["mean_difference"] == pytest.approx((6 * 0.6 - 6 * 0.05) / 12)
    assert (p["baseline_median"], p["variant_median"]) == (pytest.approx(0.625), pytest.approx(0.9))
    assert (p["baseline_worst"], p["variant_worst"]) == (pytest.approx(0.3), pytest.approx(0.9))

    moved = _rows("botorch", {s: (0.95 if s < 3 else 0.3 if s < 9 else 0.95) for s in range(12)})
    p = compare.paired(base, moved)
    assert (p["lifted"], p["dropped"], p["sign_test_p"]) == (3, 3, 1.0)  # stalls moved between seeds

    assert compare.paired(base, base)["wilcoxon_p"] == 1.0
    with pytest.raises(ValueError, match="no seed in common"):
        compare.paired(base, _rows("botorch", {99: 0.5}))


def test_every_strategy_is_paired_with_the_one_named(compare):
    kiln = _rows("botorch", {s: 0.95 for s in range(8)})
    ax = _rows("ax", {s: (0.95 if s < 2 else 0.4) for s in range(10)})  # seeds 8 and 9: kiln did not run them
    elsewhere = _rows("tpe", {50: 0.5})  # no seed in common with Ax: left out
    table = compare.versus_markdown([{"problem": "p", "results": kiln + ax + elsewhere}], "ax")
    assert "| p | kiln vs ax | 8 | 2 / 8 | 6 / 0 | 0.03 |" in table and "tpe" not in table
    with pytest.raises(ValueError, match="no problem has the strategy 'tpe'"):
        compare.versus_markdown([{"problem": "p", "results": kiln + ax}], "tpe")


def test_the_command_pairs_merged_documents(tmp_path):
    paths = {}
    for name, finals in {
        "base_a": {s: 0.3 for s in range(4)},
        "base_b": {s: 0.95 for s in range(4, 8)},
        "variant": {s: 0.9 for s in range(8)},
    }.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps({"problem": "virtual_lab", "results": _rows("botorch", finals)}))
    script = str(ROOT / "benchmarks" / "compare.py")
    args = ["--baseline", str(paths["base_a"]), "--baseline", str(paths["base_b"]), str(paths["variant"])]
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True).stdout
    assert "| virtual_lab | kiln | 8 | 4 / 8 | 4 / 0 | 0.12 |" in out
    assert "| 0.625 -> 0.900 | 0.300 -> 0.900 |" in out

    table = subprocess.run([sys.executable, script, str(paths["variant"])], capture_output=True, text=True, check=True)
    assert "| kiln | 8 | 0.10 / 0.10" in table.stdout

    paths["both"] = tmp_path / "both.json"
    rows = _rows("botorch", {s: 0.9 for s in range(4)}) + _rows("random", {s: 0.2 for s in range(4)})
    paths["both"].write_text(json.dumps({"problem": "virtual_lab", "results": rows}))
    versus = [sys.executable, script, "--versus", "kiln", "--at", "16", str(paths["both"])]
    out = subprocess.run(versus, capture_output=True, text=True, check=True).stdout
    assert ">= 0.8 after 16" in out and "| virtual_lab | random vs kiln | 4 | 0 / 0 | 0 / 0 | 1.00 |" in out
