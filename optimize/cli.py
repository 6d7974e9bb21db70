"""``kiln``: the command line. Thin: parse options, call one function of ``optimize.service``, render.

Heavy libraries (torch, botorch, mlflow) are imported inside the commands so ``kiln --help`` is fast.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from optimize.errors import KilnError

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cspbbr3_sio2.yaml"

app = typer.Typer(
    help="kiln: Bayesian optimization that tells you which synthesis to run next.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class Format(str, Enum):
    table = "table"
    json = "json"


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="campaign YAML", show_default=True)]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table (rich) or json (one document on stdout)")]


def _load(config: Path):
    from optimize.config import load_config

    return load_config(config)


def _run(fn, *args: Any, **kwargs: Any) -> Any:
    """Call a library function; turn user-fixable errors into a message and exit code 2."""
    from surrogate.errors import SurrogateFitError

    try:
        return fn(*args, **kwargs)
    except (KilnError, SurrogateFitError) as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@app.command()
def suggest(
    n: Annotated[int, typer.Option("-n", "--n", min=1, max=64, help="number of recipes")] = 4,
    seed: Annotated[int, typer.Option(help="random seed (same data + seed = same suggestions)")] = 0,
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
) -> None:
    """Propose the next N recipes; record them as pending and write a batch template to fill in."""
    from optimize.service import suggest as run_suggest

    cfg = _run(_load, config)
    result = _run(run_suggest, cfg, n, seed)
    if format is Format.json:
        _emit_json(result.to_json())
        return
    table = Table(title=f"{cfg.name}: batch {result.batch} ({result.strategy}, data {result.data_version})")
    table.add_column("id")
    for name in cfg.input_names:
        table.add_column(name)
    for t in cfg.targets:
        table.add_column(f"{t.name} ({'max' if t.sign > 0 else 'min'})", justify="right")
    for s in result.suggestions:
        preds = [
            "" if p["mean"] is None else f"{p['mean']:.3g} ± {p['std']:.2g}" for p in (s.predicted[t] for t in cfg.target_names)
        ]
        table.add_row(s.id, *[_fmt(s.inputs[k]) for k in cfg.input_names], *preds)
    Console().print(table)
    err.print(f"template: {result.template}\nMLflow run: {result.mlflow_run_id}  ({result.seconds['total']:.1f} s)")


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="filled batch CSV (e.g. a template from kiln suggest)")],
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
) -> None:
    """Validate a filled batch, add it to the campaign (append-only), retrain and log to MLflow."""
    from optimize.service import ingest as run_ingest

    cfg = _run(_load, config)
    result = _run(run_ingest, cfg, file)
    if format is Format.json:
        _emit_json(result.to_json())
        return
    Console().print(f"added {result.rows} experiments as {result.batch_file.name} (data version {result.data_version})")
    _print_retrain(result.retrain)


@app.command()
def retrain(config: ConfigOpt = DEFAULT_CONFIG, format: FormatOpt = Format.table) -> None:
    """Refit all surrogates, score them by leave-one-out and log metrics, plots and models."""
    from optimize.service import retrain as run_retrain

    cfg = _run(_load, config)
    result = _run(run_retrain, cfg)
    if format is Format.json:
        _emit_json(result.to_json())
        return
    _print_retrain(result)


def _print_retrain(result) -> None:
    table = Table(title=f"models on data {result.data_version} (leave-one-out)")
    for col in ("target", "model", "rows", "censored", "RMSE", "NLPD", "90% coverage"):
        table.add_column(col, justify="right" if col not in ("target", "model") else "left")
    for r in result.targets:
        table.add_row(r.target, r.model, str(r.n_rows), str(r.n_censored), _fmt(r.loo_rmse), _fmt(r.loo_nlpd), _fmt(r.loo_coverage90))
    Console().print(table)
    err.print(f"MLflow run: {result.mlflow_run_id}")


@app.command()
def history(config: ConfigOpt = DEFAULT_CONFIG, format: FormatOpt = Format.table) -> None:
    """Experiments so far, best value per target, the measured Pareto set and pending suggestions."""
    from optimize.service import history as run_history

    cfg = _run(_load, config)
    result = _run(run_history, cfg)
    if format is Format.json:
        _emit_json(result.to_json())
        return
    console = Console()
    pareto_ids = set(result.pareto["experiment_id"])
    table = Table(title=f"{cfg.name}: {len(result.experiments)} experiments (data {result.data_version}); * = Pareto set")
    cols = ["experiment_id", "batch", *cfg.input_names, *cfg.target_names]
    for c in cols:
        table.add_column(c)
    for _, row in result.experiments.iterrows():
        cells = []
        for c in cols:
            v = _fmt(row[c])
            q = row.get(f"{c}_qualifier", "") if c in cfg.target_names else ""
            cells.append(f"{q}{v}" if v and q in ("<", ">") else v)
        if row["experiment_id"] in pareto_ids:
            cells[0] = f"* {cells[0]}"
        table.add_row(*cells)
    console.print(table)
    best = Table(title="best so far")
    best.add_column("target")
    best.add_column("value", justify="right")
    best.add_column("experiment")
    for t in cfg.targets:
        b = result.best[t.name]
        best.add_row(f"{t.name} ({t.direction})", _fmt(b["value"]), b["experiment_id"] or "")
    console.print(best)
    console.print(f"Pareto set (all objectives measured): {', '.join(sorted(pareto_ids)) or 'none yet'}")
    console.print(f"pending suggestions: {', '.join(result.pending['suggestion_id']) or 'none'}")
    console.print(f"MLflow runs: {len(result.runs)} (kiln ui to browse)")


@app.command()
def ui(
    config: ConfigOpt = DEFAULT_CONFIG,
    port: Annotated[int, typer.Option(help="port to listen on")] = 5000,
    host: Annotated[str, typer.Option(help="interface; 127.0.0.1 keeps the UI private to this machine")] = "127.0.0.1",
) -> None:
    """Serve the MLflow UI over the campaign's tracking store."""
    cfg = _run(_load, config)
    uri = cfg.tracking_uri
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", (cfg.tracking_path / "artifacts").as_uri()]
    err.print(f"MLflow UI for {cfg.name} at http://{host}:{port}  (store {uri}; Ctrl-C to stop)")
    raise typer.Exit(subprocess.call(cmd, env={**os.environ}))


if __name__ == "__main__":
    app()
