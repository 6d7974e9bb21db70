"""kiln serve: the real server on a free loopback port, real keys, real retrains in the background."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, make_campaign

NAME = "cspbbr3_sio2"
KILN = [sys.executable, "-m", "optimize.cli"]


def create_key(keys: Path, role: str) -> str:
    """``kiln keys create``: the token is alone on the last line of stdout."""
    out = subprocess.run([*KILN, "keys", "create", "--role", role, "--keys-file", str(keys)], capture_output=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().strip().splitlines()[-1]


class Server:
    def __init__(self, config: Path, keys: Path | None, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [*KILN, "serve", "--config", str(config), "--port", str(self.port), *extra]
        cmd += ["--keys-file", str(keys)] if keys else ["--keys-file", str(log.parent / "no-keys.yaml")]
        self.proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=log.parent)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("kiln serve did not start: " + log.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    config = make_campaign(tmp)
    keys = tmp / "keys.yaml"
    tokens = {role: create_key(keys, role) for role in ("read", "write")}
    server = Server(config, keys, tmp / "server.log", "--max-body-mb", "0.05")
    yield server, tokens, config
    server.stop()
    from optimize.config import load_config
    from optimize.local_service import service_file

    assert not service_file(load_config(config)).exists(), "a stopped server left its service file"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_keys_file_holds_only_hashes_and_roles_are_enforced(served):
    server, tokens, config = served
    keys_text = (config.parent / "keys.yaml").read_text()
    assert all(t not in keys_text for t in tokens.values()) and "sha256" in keys_text
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/campaigns").status_code == 401
    wrong = httpx.get(server.url + "/campaigns", headers=auth(tokens["read"] + "x"))
    assert wrong.status_code == 401 and "error" in wrong.json()
    listed = httpx.get(server.url + "/campaigns", headers=auth(tokens["read"])).json()["campaigns"]
    assert [(c["name"], c["n_experiments"]) for c in listed] == [(NAME, 13)]
    denied = httpx.post(f"{server.url}/campaigns/{NAME}/suggestions", json={"n": 1}, headers=auth(tokens["read"]))
    assert denied.status_code == 403 and "write key" in denied.json()["error"]["message"]
    assert httpx.get(server.url + "/campaigns").headers["www-authenticate"] == "Bearer"
    late = create_key(config.parent / "keys.yaml", "read")  # a key created while the server runs counts at once
    assert httpx.get(server.url + "/campaigns", headers=auth(late)).status_code == 200
    tokens["late"] = late


def test_suggest_ingest_predict_history_through_http(served):
    server, tokens, config = served
    w, base = auth(tokens["write"]), f"{server.url}/campaigns/{NAME}"
    got = httpx.post(base + "/suggestions", json={"n": 2, "seed": 0}, headers=w, timeout=600).json()
    assert len(got["suggestions"]) == 2 and got["models_data_version"] == got["data_version"]
    assert set(got["models"]) == set(got["explored_with"]) == set(got["suggestions"][0]["predicted"])  # per target
    # the suggestion's MLflow run is logged after the answer, in the server's logging process
    from mlflow.tracking import MlflowClient

    from optimize.config import load_config
    from optimize.tracking import wait_for_run

    cfg = load_config(config)
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    # a liveness check, not a timing target: seconds on a quiet machine
    assert wait_for_run(cfg, got["mlflow_run_id"], timeout_s=180) == "FINISHED"
    run = client.get_run(got["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["n"] == "2"
    assert {"suggestions.json", "pareto_front.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    rows = [
        {"experiment_id": s["id"], "batch": got["batch"], **s["inputs"], "plqy": 50 + i, "fwhm_nm": 21, "status": ""}
        for i, s in enumerate(got["suggestions"])
    ]
    added = httpx.post(base + "/batches", json={"rows": rows}, headers=w).json()
    assert added["rows"] == 2 and added["data_version"] != got["data_version"]
    again = httpx.post(base + "/batches", json={"rows": rows}, headers=w)
    assert again.status_code == 422 and "already ingested" in again.json()["error"]["message"]
    # the next day: the first one's water retention, an amendment (the id and the new cell only)
    late = {"experiment_id": rows[0]["experiment_id"], "water_retention": 0.91}
    amended = httpx.post(base + "/batches", json={"rows": [late]}, headers=w).json()
    assert (amended["rows"], amended["amended_cells"]) == (0, 1)
    _, key_id, secret = tokens["write"].split("_", 2)  # kiln_<id>_<secret>; token_urlsafe may put "_" in the secret
    provenance = (load_config(config).data_path / "batches" / amended["batch"]).with_suffix(".yaml").read_text()
    assert f"by: key {key_id}" in provenance  # the key's id, never its secret
    assert secret not in provenance
    added = amended
    bad = dict(rows[0], experiment_id="X9", carbonate="K9CO3")
    err = httpx.post(base + "/batches", json={"rows": [bad]}, headers=w)
    assert err.status_code == 422
    assert {k: err.json()["error"][k] for k in ("row", "column", "value")} == {
        "row": 2,
        "column": "carbonate",
        "value": "K9CO3",
    }
    assert "K2CO3" in err.json()["error"]["fix"]
    csv = (
        "experiment_id,batch,temperature_c,k_ratio,carbonate,addition,br_fraction,plqy,fwhm_nm,dispersibility,"
        "water_retention\nX3,B,9000,0,none,,1,5,,,\n"
    )
    err = httpx.post(base + "/batches", content=csv, headers={**w, "content-type": "text/csv"})
    assert err.status_code == 422 and err.json()["error"]["column"] == "temperature_c"

    r = auth(tokens["read"])
    history = httpx.get(base + "/history", headers=r).json()
    ids = [e["experiment_id"] for e in history["experiments"]]
    assert len(ids) == 15 and {s["id"] for s in got["suggestions"]} <= set(ids)
    assert [e["water_retention"] for e in history["experiments"] if e["experiment_id"] == late["experiment_id"]] == [
        0.91
    ]
    assert history["data_version"] == added["data_version"]
    assert httpx.get(base + "/history?format=csv", headers=r).text.count("\n") == 16  # header + 15 rows
    recipe = {"temperature_c": 650, "k_ratio": 1.0, "carbonate": "K2CO3", "addition": "internal", "br_fraction": 1}
    pred = httpx.post(base + "/predictions", json={"recipes": [recipe]}, headers=r).json()
    assert set(pred["predictions"][0]["predicted"]) == {"plqy", "fwhm_nm", "dispersibility", "water_retention"}
    assert pred["predictions"][0]["predicted"]["plqy"]["std"] > 0
    summary = httpx.get(base, headers=r).json()
    assert summary["n_experiments"] == 15 and summary["n_pending"] == 0
    assert {t["name"] for t in summary["targets"]} == set(pred["models"])


def test_names_cannot_reach_files_and_big_bodies_are_refused_unread(served):
    server, tokens, config = served
    r = auth(tokens["read"])
    for path in ("/campaigns/..%2F..%2Fkeys.yaml", "/campaigns/%2e%2e/history", "/campaigns/..%2Fcampaign/history"):
        res = httpx.get(server.url + path, headers=r)
        assert res.status_code == 404 and "keys" not in res.text, path
    # a body announced above the limit (0.05 MiB here) is answered 413 without the server waiting for it
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            f"POST /campaigns/{NAME}/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['write']}\r\n"
            "Content-Type: text/csv\r\nContent-Length: 1000000000\r\n\r\n".encode()
        )
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
    res = httpx.post(f"{server.url}/campaigns/{NAME}/batches", content=b"x" * 60_000, headers={**auth(tokens["write"])})
    assert res.status_code == 413 and "limit" in res.json()["error"]["message"]


def test_a_key_is_never_logged(served):
    server, tokens, _ = served
    httpx.get(server.url + "/campaigns", headers=auth(tokens["write"]))
    log = server.log.read_text()
    assert "GET /campaigns" in log and all(t not in log for t in tokens.values())


def test_a_network_bind_needs_keys(tmp_path):
    config = make_campaign(tmp_path)
    cmd = [*KILN, "serve", "--config", str(config), "--host", "0.0.0.0", "--keys-file", str(tmp_path / "none.yaml")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "kiln keys create" in out.stderr


def test_files_kiln_writes_are_readable_by_colleagues(tmp_path):
    """Batches, ledger and templates get 0644 under the default umask (mkstemp gave 0600)."""
    from optimize.campaign import add_batch, csv_bytes, record_suggestions, write_template
    from optimize.config import load_config
    from optimize.validation import table_columns

    old = os.umask(0o022)
    try:
        cfg = load_config(make_campaign(tmp_path))
        row = {c: "" for c in table_columns(cfg)}
        row.update(experiment_id="P1", batch="B", temperature_c=600, k_ratio=0, carbonate="none", br_fraction=1)
        import pandas as pd

        stored = add_batch(cfg, csv_bytes(pd.DataFrame([row])), "p.csv").path
        recipes = pd.DataFrame([{"suggestion_id": "S1-1", "batch": "S1", **{k: row[k] for k in cfg.input_names}}])
        template = write_template(cfg, "S1", recipes)
        from optimize.campaign import ledger_columns

        ledger = record_suggestions(cfg, recipes.reindex(columns=ledger_columns(cfg)))
    finally:
        os.umask(old)
    for path in (stored, template, ledger):
        assert path.stat().st_mode & 0o777 == 0o644, path


def _random_rows(cfg, rng, ids: list[str], batch: str) -> list[dict]:
    """Measured rows on random valid recipes (on the inputs' steps)."""
    rows = []
    for i in ids:
        carbonate = str(rng.choice(["none", "K2CO3", "Na2CO3", "Cs2CO3"]))
        rows.append(
            {
                "experiment_id": i,
                "batch": batch,
                "temperature_c": float(400 + 5 * rng.integers(0, 81)),
                "k_ratio": 0.0 if carbonate == "none" else round(0.1 + 0.05 * int(rng.integers(0, 79)), 2),
                "carbonate": carbonate,
                "addition": "" if carbonate == "none" else str(rng.choice(["internal", "external"])),
                "br_fraction": round(0.05 * int(rng.integers(0, 21)), 2),
                "plqy": float(rng.uniform(1, 80)),
                "fwhm_nm": float(rng.uniform(18, 30)),
            }
        )
    return rows


def _key(recipe: dict) -> tuple:
    """A recipe as comparable values; an input that does not apply (``None`` in a suggestion, empty in a batch
    row, e.g. ``addition`` without a carbonate) is ``""`` either way."""

    def value(v):
        return "" if v is None else str(v) if isinstance(v, str) else round(float(v), 6)

    return tuple(value(recipe[k]) for k in sorted(recipe))


@pytest.mark.slow
def test_nothing_is_lost_under_load(served):
    """8 concurrent clients: 6 ingest 190 batches of random measured recipes, 2 robots suggest, measure and
    ingest their 10 batches. Every row lands once, ids stay unique, no suggestion repeats a recipe suggested
    before or measured before it was asked for, the server stays up, and retrains are coalesced."""
    import threading

    import numpy as np

    from optimize.config import load_config

    server, tokens, config = served
    cfg = load_config(config)
    base, w = f"{server.url}/campaigns/{NAME}", auth(tokens["write"])
    before = httpx.get(base, headers=w).json()
    sent: list[str] = []
    measured_at: list[tuple[float, tuple]] = []  # (when the ingest returned, recipe)
    asked: list[tuple[float, list[tuple]]] = []  # (when the suggestion was asked for, its recipes)
    errors: list[str] = []
    lock = threading.Lock()

    def ingest(client: httpx.Client, rows: list[dict]) -> None:
        res = client.post(base + "/batches", json={"rows": rows}, headers=w, timeout=300)
        with lock:
            if res.status_code != 200 or res.json()["rows"] != len(rows):
                errors.append(res.text)
            sent.extend(r["experiment_id"] for r in rows)
            done = time.monotonic()
            measured_at.extend((done, _key({k: r[k] for k in cfg.input_names})) for r in rows)

    def bench(c: int, batches: int) -> None:
        rng = np.random.default_rng(100 + c)
        with httpx.Client() as client:
            for b in range(batches):
                ingest(client, _random_rows(cfg, rng, [f"L{c}-{b}"], f"L{c}"))

    def robot(c: int) -> None:
        rng = np.random.default_rng(200 + c)
        with httpx.Client() as client:
            for _ in range(5):
                t = time.monotonic()
                res = client.post(base + "/suggestions", json={"n": 2, "seed": c}, headers=w, timeout=600)
                if res.status_code != 200:
                    errors.append(res.text)
                    return
                doc = res.json()
                with lock:
                    asked.append((t, [_key(s["inputs"]) for s in doc["suggestions"]]))
                rows = _random_rows(cfg, rng, [s["id"] for s in doc["suggestions"]], doc["batch"])
                for row, s in zip(rows, doc["suggestions"]):
                    row.update({k: ("" if v is None else v) for k, v in s["inputs"].items()})
                ingest(client, rows)

    threads = [threading.Thread(target=bench, args=(c, 32 if c < 4 else 31)) for c in range(6)]
    threads += [threading.Thread(target=robot, args=(c,)) for c in (6, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(sent) == 190 + 20 and server.proc.poll() is None

    history = httpx.get(base + "/history", headers=w, timeout=60).json()
    ids = [e["experiment_id"] for e in history["experiments"]]
    assert len(ids) == len(set(ids)) == before["n_experiments"] + len(sent)
    assert set(sent) <= set(ids)
    seen = [k for _, keys in sorted(asked) for k in keys]
    assert len(seen) == len(set(seen)) == 20, "a suggestion repeated a recipe suggested before"
    for t, keys in asked:
        earlier = {k for done, k in measured_at if done < t}
        assert not earlier & set(keys), "a suggestion repeated a measured recipe"
    summary = httpx.get(base, headers=w).json()
    done = summary["retrain"]["done"]
    assert 1 <= done <= 12, f"{done} retrains for 200 ingests: not coalesced"


def _readme_block(marker: str) -> str:
    """The README's ```python block that contains ``marker``."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    return next(b for b in blocks if marker in b)


def test_the_readme_robot_loop_runs_against_the_server(served, capsys):
    server, tokens, _ = served
    code = _readme_block("httpx.Client").replace("http://labserver:8000", server.url)
    os.environ["KILN_TOKEN"] = tokens["write"]
    try:
        exec(code, {"run_synthesis": lambda inputs: {"plqy": 42.0, "fwhm_nm": 21.5}})
    finally:
        del os.environ["KILN_TOKEN"]
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(printed) == 2 and all("'rows': 2" in line for line in printed)


def test_kiln_suggest_asks_the_running_server(served):
    """With kiln serve running the campaign, `kiln suggest` is answered by it (with a write key from KILN_TOKEN);
    without a key it says how to get one; --local proposes in its own process; a stale service file is ignored."""
    from optimize.config import load_config
    from optimize.local_service import running_service, service_file

    server, tokens, config = served
    cfg = load_config(config)
    assert running_service(cfg) == server.url
    cmd = [*KILN, "suggest", "-n", "1", "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "KILN_TOKEN"}
    asked = subprocess.run(cmd, capture_output=True, text=True, env={**env, "KILN_TOKEN": tokens["write"]})
    assert asked.returncode == 0, asked.stderr
    assert f"proposed by kiln serve at {server.url}" in asked.stderr
    batch = asked.stdout.split("batch ")[1].split()[0]
    pending = httpx.get(f"{server.url}/campaigns/{NAME}", headers=auth(tokens["read"])).json()["n_pending"]
    assert pending >= 1 and (cfg.data_path / "templates" / f"{batch}.csv").exists()

    refused = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "KILN_TOKEN" in refused.stderr
    local = subprocess.run([*cmd, "--local", "-f", "json"], capture_output=True, text=True, env=env)
    assert local.returncode == 0, local.stderr
    assert "served_by" not in json.loads(local.stdout)

    saved = service_file(cfg).read_text()
    try:
        service_file(cfg).write_text(saved.replace(f'"pid": {server.proc.pid}', '"pid": 999999999'))
        assert running_service(cfg) is None
    finally:
        service_file(cfg).write_text(saved)


def test_the_readme_notebook_example_and_coalesced_retrains(tmp_path, capsys):
    """The README's Python example runs as written (on a copy of the seed campaign); then 8 quick ingests
    cause at most 2 retrains, and the next suggestion uses models of the newest data."""
    import numpy as np
    import pandas as pd

    from optimize import open_campaign

    config = make_campaign(tmp_path)
    ns: dict = {}
    exec(_readme_block("open_campaign").replace("my-lab/campaign.yaml", str(config)), ns)
    assert ns["batch"].experiment_id.tolist() == ["S001-1", "S001-2"] and "plqy_std" in ns["batch"]
    assert "he2023-13" in capsys.readouterr().out  # history().tail(3) printed

    lab = open_campaign(config)
    try:
        lab.live.wait_for_models()
        start = lab.live.retrains
        rng = np.random.default_rng(0)
        for i in range(8):
            rows = _random_rows(lab.live.config, rng, [f"Q{i}"], "Q")
            lab.ingest(pd.DataFrame(rows))
        batch = lab.suggest(1)
        assert lab.live.retrains - start <= 2
        assert lab.live.models_version == lab.live.summary(short=True)["data_version"]
        assert len(lab.history()) == 13 + 2 + 8 and batch.experiment_id.tolist() == ["S002-1"]
    finally:
        lab.close()
