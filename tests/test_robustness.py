"""Nothing lost, nothing silently wrong: exact round trips (hypothesis), concurrent ingests from real
processes, ``kill -9`` in the middle of ingests, corrupt model caches, safe YAML, oversized files."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimize.campaign import BATCHES, ingest_batch, load_campaign
from optimize.config import ConfigError, load_config
from optimize.errors import DataError
from optimize.validation import MAX_BYTES, TEXT_COLUMNS, qualifier_column, table_columns
from tests.conftest import ROOT, make_campaign, snapshot

CARBONATES = ("none", "K2CO3", "Na2CO3", "Cs2CO3")


# ---- property: any valid batch round-trips exactly -------------------------------------------
def _value(lo: float, hi: float):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(str.strip)


@st.composite
def _row(draw, i: int) -> dict:
    carbonate = draw(st.sampled_from(CARBONATES))
    row = {
        "experiment_id": f"e{i}-" + draw(st.from_regex(r"[A-Za-z0-9_.-]{0,8}", fullmatch=True)),
        "batch": draw(st.sampled_from(["", "b1", "furnace 3"])),
        "temperature_c": draw(_value(400, 800)),
        "k_ratio": 0.0 if carbonate == "none" else draw(_value(0.1, 4)),  # a carbonate is dosed from 0.1
        "carbonate": carbonate,
        "addition": "" if carbonate == "none" else draw(st.sampled_from(["internal", "external"])),
        "br_fraction": draw(_value(0, 1)),
    }
    for name, lo, hi in (("plqy", 0, 100), ("fwhm_nm", 0, 200), ("dispersibility", 0, 1), ("water_retention", 0, 1)):
        v = draw(st.none() | _value(lo, hi))
        row[name] = v
        row[qualifier_column(name)] = "" if v is None else draw(st.sampled_from(["", "", "<", ">", "~"]))
    failed = draw(st.booleans()) and all(
        row[t] is None for t in ("plqy", "fwhm_nm", "dispersibility", "water_retention")
    )
    row["status"] = "failed" if failed else draw(st.sampled_from(["", "ok"]))
    if draw(st.booleans()):  # the furnace log says what temperature was really reached
        row["temperature_c_actual"] = draw(_value(400, 800))
    for c in TEXT_COLUMNS:
        row[c] = draw(_text)
    return row


@st.composite
def _batch(draw) -> list[dict]:
    n = draw(st.integers(1, 6))
    return [draw(_row(i)) for i in range(n)]


def _csv(config, rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = table_columns(config)
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else r[c]) for c in cols])
    return buf.getvalue().encode()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(_batch(), min_size=1, max_size=3))
def test_random_valid_batches_round_trip_exactly(batches):
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(make_campaign(Path(tmp)))
        base = len(load_campaign(config).experiments)
        expected = []
        for k, rows in enumerate(batches):
            for r in rows:
                r["experiment_id"] = f"b{k}-{r['experiment_id']}"
            path = Path(tmp) / f"in{k}.csv"
            path.write_bytes(_csv(config, rows))
            ingest_batch(config, path)
            expected += rows
        got = load_campaign(config).experiments.iloc[base:].reset_index(drop=True)
        assert len(got) == len(expected)
        for i, r in enumerate(expected):
            if "temperature_c_actual" in r:  # models use the actual value; the planned one is kept
                r["temperature_c_planned"], r["temperature_c"] = r["temperature_c"], r.pop("temperature_c_actual")
            for c, v in r.items():
                g = got.at[i, c]
                if v is None:
                    assert isinstance(g, float) and math.isnan(g), (c, g)
                else:
                    assert g == v and isinstance(g, type(v)), (c, g, v)
        # the stored files are the bytes that came in
        stored = sorted((config.data_path / BATCHES).glob("*.csv"))[-len(batches) :]
        assert [p.read_bytes() for p in stored] == [
            (Path(tmp) / f"in{k}.csv").read_bytes() for k in range(len(batches))
        ]


# ---- more bad inputs: oversized, YAML, lookup tables, predict files ---------------------------
def test_a_100_mb_file_is_refused_before_it_is_read(config, tmp_path):
    big = tmp_path / "big.csv"
    with big.open("wb") as f:  # sparse: 100 MB on paper, no disk used
        f.truncate(100 * 10**6)
    before = snapshot(config.data_path)
    with pytest.raises(
        DataError, match=r"big.csv: the file is 100 MB, above the 10 MiB limit. Fix: split it into batches"
    ):
        ingest_batch(config, big)
    assert snapshot(config.data_path) == before
    assert big.stat().st_size > MAX_BYTES


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("name: x\n!!python/object/apply:os.system ['echo pwned']\n", r"not valid YAML"),
        ("!!python/object/apply:os.system ['echo pwned']", r"not valid YAML"),
        ("- just\n- a list\n", r"expected a mapping"),
        ("name: x\ndata_dir: d\ninputs: []\ntargets: []\ncolour: red\n", r"colour: unknown key"),
    ],
)
def test_config_yaml_is_read_safely_and_checked(tmp_path, yaml_text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=expected) as e:
        load_config(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"temperature_c\ttk_ratio\n650\t1\n", r"not separated by commas"),
        (
            b"temperature_c,k_ratio,carbonate,addition,br_fraction\n650,1,K2CO3,internal,1,5\n",
            r"row 2: the row has 6 cells",
        ),
        (
            b"temperature_c,k_ratio,carbonate,addition,br_fraction\n650,1,K2CO3,inside,1\n",
            r"column 'addition': unknown category \(value 'inside'\)",
        ),
    ],
)
def test_lookup_tables_and_predict_files_are_validated_like_batches(config_path, config, tmp_path, content, expected):
    from typer.testing import CliRunner

    from optimize.benchmark import lookup_problem
    from optimize.cli import app

    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=expected):
        lookup_problem(config, bad)
    res = CliRunner().invoke(app, ["predict", str(bad), "--config", str(config_path)])
    assert res.exit_code == 2 and "bad.csv" in res.stderr and "Fix:" in res.stderr


# ---- corrupt or stale model caches are refit, never trusted ---------------------------------
@pytest.mark.parametrize("damage", ["truncate", "edit-a-number", "other-data"])
def test_a_corrupt_or_stale_model_cache_is_detected(config, damage):
    from optimize.models import cache_path, fit_models, load_cached, save_cached

    campaign = load_campaign(config)
    fitted = fit_models(campaign)
    path = save_cached(config, fitted)
    assert load_cached(config, campaign.version) is not None
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "edit-a-number":  # valid JSON, wrong content: only the checksum can tell
        doc = json.loads(text)
        doc["models"]["surrogates"]["plqy"]["train_y"][0] += 1.0
        path.write_text(json.dumps(doc))
    else:  # a cache file of another data version copied into this version's place
        doc = json.loads(text)
        doc["models"]["data_version"] = "0" * 12
        path.write_text(json.dumps(doc))
    assert path == cache_path(config, campaign.version)
    assert load_cached(config, campaign.version) is None


# ---- concurrency: 8 ingests at once, real processes -----------------------------------------
def _kiln(*args: str) -> list[str]:
    return [sys.executable, "-m", "optimize.cli", *args]


def _batch_file(folder: Path, k: int, rows: int = 3) -> Path:
    lines = [",".join(table_columns_seed())]
    for i in range(rows):
        lines.append(f"c{k}-{i},c{k},{600 + k},1.0,K2CO3,internal,1,{50 + i},,{22 + k % 3},0.75,0.9,,,,concurrent {k}")
    path = folder / f"batch{k:02d}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def table_columns_seed() -> list[str]:
    return [
        "experiment_id",
        "batch",
        "temperature_c",
        "k_ratio",
        "carbonate",
        "addition",
        "br_fraction",
        "plqy",
        "plqy_qualifier",
        "fwhm_nm",
        "dispersibility",
        "water_retention",
        "fwhm_nm_qualifier",
        "dispersibility_qualifier",
        "water_retention_qualifier",
        "notes",
    ]


@pytest.mark.slow
def test_eight_concurrent_ingests_all_land_once(config_path, config, tmp_path):
    before = load_campaign(config)
    files = [_batch_file(tmp_path, k) for k in range(8)]
    procs = [
        subprocess.Popen(
            _kiln("ingest", str(f), "--no-retrain", "--format", "json", "--config", str(config_path)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, errtext) in zip(procs, outs):
        assert p.returncode == 0, errtext
    after = load_campaign(config)
    new = after.experiments.iloc[len(before.experiments) :]
    assert len(after.batches) == len(before.batches) + 8
    assert sorted(new["experiment_id"]) == sorted(f"c{k}-{i}" for k in range(8) for i in range(3))
    stored = {b.path.read_bytes() for b in after.batches[len(before.batches) :]}
    assert stored == {f.read_bytes() for f in files}
    numbers = [b.path.name[:3] for b in after.batches]
    assert len(set(numbers)) == len(numbers)  # no two processes took the same batch number
    # each process logged its ingest run to the one SQLite store
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    exp = client.get_experiment_by_name(config.name)
    runs = client.search_runs([exp.experiment_id], "tags.`kiln.kind` = 'ingest'")
    assert len(runs) == 8
    # the same 8 files again, at once: every one is refused as already ingested, nothing changes
    snap = snapshot(config.data_path)
    procs = [
        subprocess.Popen(
            _kiln("ingest", str(f), "--no-retrain", "--config", str(config_path)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 2 and "already ingested" in e for p, (_, e) in zip(procs, outs))
    assert snapshot(config.data_path) == snap


# ---- crash safety: kill -9 at random points of a stream of ingests ---------------------------
_WRITER = """
import sys
from pathlib import Path
from optimize.campaign import ingest_batch, record_suggestions, ledger_columns
from optimize.config import load_config
from optimize.errors import DataError
import pandas as pd

config = load_config(sys.argv[1])
print("ready", flush=True)
for path in sorted(Path(sys.argv[2]).glob("*.csv")):
    try:
        ingest_batch(config, path)
    except DataError as e:
        if "already ingested" not in str(e):
            raise
    row = {c: "" for c in ledger_columns(config)}
    recipe = dict(temperature_c=600.0, k_ratio=1.0, br_fraction=1.0, carbonate="K2CO3", addition="internal")
    row.update(suggestion_id=f"L-{path.stem}", batch="L", **recipe)
    record_suggestions(config, pd.DataFrame([row]))
print("done", flush=True)
"""


def _big_batch(folder: Path, k: int, rows: int) -> Path:
    lines = [",".join(table_columns_seed())]
    lines += [
        f"k{k}-{i},k{k},{400 + (i % 80) * 5},{0.1 + (i % 78) * 0.05:.2f},K2CO3,external,0.5,"  # dosed from 0.1
        f"{i % 100},,30,0.5,0.5,,,,row {i}"
        for i in range(rows)
    ]
    path = folder / f"{k:03d}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_a_valid_campaign_and_nothing_lost(config_path, config, tmp_path):
    import random

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    sources = [_big_batch(incoming, k, 1500) for k in range(12)]
    n_seed = len(load_campaign(config).batches)
    rng = random.Random(0)
    kills, finished = 0, False
    for attempt in range(40):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(config_path), str(incoming)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        if attempt < 10:
            time.sleep(rng.uniform(0.05, 1.5))
            os.kill(proc.pid, signal.SIGKILL)
        out, errtext = proc.communicate(timeout=600)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert proc.returncode == 0, errtext
            finished = "done" in out
        # after every crash: the campaign loads, each stored batch is a whole source file
        campaign = load_campaign(config)
        stored = [b.path.read_bytes() for b in campaign.batches[n_seed:]]
        assert all(s in {p.read_bytes() for p in sources} for s in stored)
        assert len(set(stored)) == len(stored)
        assert campaign.experiments["experiment_id"].is_unique
        if finished:
            break
    assert kills == 10 and finished
    campaign = load_campaign(config)
    assert [b.path.read_bytes() for b in campaign.batches[n_seed:]] == [p.read_bytes() for p in sources]
    assert len(campaign.experiments) == 13 + 12 * 1500
    ledger_ids = list(campaign.ledger["suggestion_id"])
    assert set(ledger_ids) == {f"L-{p.stem}" for p in sources}  # at-least-once per batch, never a torn file
    leftovers = [p.name for p in (config.data_path / BATCHES).iterdir() if p.name.startswith(".")]
    print(f"{kills} kills; {len(leftovers)} orphaned temp files (ignored by the loader)")


_CRASH = """
import os, sys
from pathlib import Path
import pandas as pd
from optimize.campaign import ingest_batch, ledger_columns, record_suggestions
from optimize.config import load_config

config_path, batch, step, point = sys.argv[1:5]
config = load_config(config_path)
calls = {"fsync": 0}
real_fsync, real_replace = os.fsync, os.replace
offset = 2 if step != "ledger" else 0  # a batch's provenance file is written (2 fsyncs) before the batch

def fsync(fd):  # crash at the CSV's first fsync (data written, not yet durable) or its second (after rename)
    calls["fsync"] += 1
    if (point, calls["fsync"] - offset) in (("before-fsync", 1), ("after-rename", 2)):
        os._exit(137)
    real_fsync(fd)

def replace(src, dst):  # the CSV's temp file is complete and synced; its rename never happens
    if str(dst).endswith(".csv"):
        os._exit(137)
    real_replace(src, dst)

os.fsync = fsync
if point == "before-rename":
    os.replace = replace
if step != "ledger":
    ingest_batch(config, Path(batch))
else:
    row = {c: "" for c in ledger_columns(config)}
    recipe = dict(temperature_c=600.0, k_ratio=1.0, br_fraction=1.0, carbonate="K2CO3", addition="internal")
    row.update(suggestion_id="crash-1", batch="L", **recipe)
    record_suggestions(config, pd.DataFrame([row]))
"""


@pytest.mark.parametrize("step", ["batch", "amendment", "ledger"])
@pytest.mark.parametrize("point", ["before-fsync", "before-rename", "after-rename"])
def test_a_crash_at_each_point_of_a_write_leaves_the_old_or_the_new_file(config_path, config, tmp_path, step, point):
    from optimize.campaign import LEDGER, ledger_columns, record_suggestions

    batch = _batch_file(tmp_path, 1)
    if step == "amendment":  # a late FWHM and a corrected PLQY of seed experiments
        batch.write_text("experiment_id,fwhm_nm,plqy,reason\nhe2023-03,24.5,,\nhe2023-06,,52,re-measured\n")
    before = load_campaign(config)
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, str(config_path), str(batch), step, point],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 137, proc.stderr
    after = load_campaign(config)  # loads: no torn file is ever visible
    landed = point == "after-rename"
    if step != "ledger":
        assert len(after.batches) == len(before.batches) + landed
        if landed:
            assert after.batches[-1].path.read_bytes() == batch.read_bytes()
        else:  # the lab re-runs the ingest and it lands once
            ingest_batch(config, batch)
        final = load_campaign(config)
        assert len(final.batches) == len(before.batches) + 1
        if step == "amendment":
            rows = final.experiments.set_index("experiment_id")
            assert (rows.at["he2023-03", "fwhm_nm"], rows.at["he2023-06", "plqy"]) == (24.5, 52.0)
            assert len(final.amendments) == 2 and len(final.experiments) == len(before.experiments)
    else:
        assert list(after.ledger["suggestion_id"]) == (["crash-1"] if landed else [])
        if not landed:
            row = {c: "" for c in ledger_columns(config)}
            row.update(
                suggestion_id="crash-1",
                batch="L",
                temperature_c=600.0,
                k_ratio=1.0,
                br_fraction=1.0,
                carbonate="K2CO3",
                addition="internal",
            )
            record_suggestions(config, pd.DataFrame([row]))
        assert list(load_campaign(config).ledger["suggestion_id"]) == ["crash-1"]
        assert (config.data_path / LEDGER).read_text().count("crash-1") == 1
