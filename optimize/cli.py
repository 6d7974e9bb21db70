"""``kiln``: the command line. Thin: parse options, call one function of ``optimize.service``, render.

Heavy libraries (torch, botorch, mlflow) are imported inside the commands so ``kiln --help`` is fast.
"""

from __future__ import annotations

import json
import math
import os
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


@app.callback()
def main(
    ctx: typer.Context,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="only results and errors: no progress, paths or timings on stderr")
    ] = False,
) -> None:
    ctx.obj = Console(stderr=True, quiet=quiet)
    # MLflow announces store migrations ("Creating initial MLflow database tables") at INFO: library chatter,
    # not kiln's output (MLFLOW_LOGGING_LEVEL=INFO brings it back). The variable covers an import still to come
    # (MLflow sets its level then); the logger's level covers an MLflow already imported (notebooks, tests).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import logging

    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())


def _err(ctx: typer.Context) -> Console:
    """This invocation's stderr console (silent with --quiet)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Console) else Console(stderr=True)


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
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def _call(fn, config: Path, format: Format, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """Load the config and run ``fn(cfg, *args, **kwargs)``. In json mode print the result and return it
    as ``None`` (the command is done); else return it for the command to render."""
    cfg = _run(_load, config)
    result = _run(fn, cfg, *args, **kwargs)
    if format is Format.json:
        _emit_json(result.to_json())
        return cfg, None
    return cfg, result


def _redacted(uri: str) -> str:
    """A store URI without its password (``postgresql://user:secret@host`` -> ``postgresql://user:***@host``)."""
    import re

    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", uri)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _caption(items) -> str | None:
    """Units of the columns under a table (headers stay short), e.g. ``T in C, FWHM in nm``."""
    units = [f"{i.header} in {i.unit}" for i in items if getattr(i, "unit", "")]
    return ", ".join(units) or None


def _narrow(title: str, first: str, headers: list[str], caption: str | None = None, right: bool = False) -> Table:
    """A table that fits an 80-column terminal: short headers, cells wrapped rather than cut."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    table.add_column(first, overflow="fold")
    for h in headers:
        table.add_column(h, overflow="fold", justify="right" if right else "left")
    return table


def _recipe_tables(
    cfg, title: str, ids: list[str], recipes: list[dict], cells: list[list[str]], what: str, note: str = ""
):
    """Two tables: the recipes (id and inputs) and, per id, the targets' cells (``cells[i]``, config order);
    ``note`` goes under the first."""
    caption = "; ".join(filter(None, [_caption(cfg.inputs), note])) or None
    inputs = _narrow(title, "id", [i.header for i in cfg.inputs], caption)
    for i, r in zip(ids, recipes):
        inputs.add_row(i, *[_fmt(r.get(k)) for k in cfg.input_names])
    targets = _narrow(what, "id", [f"{t.header} {t.short}" for t in cfg.targets], _caption(cfg.targets), right=True)
    for i, row in zip(ids, cells):
        targets.add_row(i, *row)
    return inputs, targets


def _mean_std(mean: float | None, std: float | None) -> str:
    return "" if mean is None or (isinstance(mean, float) and math.isnan(mean)) else f"{mean:.3g} ± {std:.2g}"


@app.command()
def suggest(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--n", min=1, max=64, help="number of recipes")] = 4,
    seed: Annotated[int, typer.Option(help="random seed (same data + seed = same suggestions)")] = 0,
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
    local: Annotated[
        bool, typer.Option("--local", help="propose in this process even when kiln serve runs the campaign")
    ] = False,
) -> None:
    """Propose the next N recipes; record them as pending and write a batch template to fill in.

    When `kiln serve` runs this campaign on this machine, it is asked (its models and libraries are loaded:
    seconds instead of a fresh process's 15); KILN_TOKEN holds a write key if it has keys."""
    from optimize.local_service import running_service, suggest_remote

    cfg = _run(_load, config)
    url = None if local else running_service(cfg)
    with _err(ctx).status("suggesting") as status:
        if url:
            status.update(f"asking kiln serve at {url}")
            doc = {**_run(suggest_remote, url, cfg, n, seed), "served_by": url}
        else:
            from optimize.tracking_process import TrackingProcess

            tracking = TrackingProcess(cfg)  # imports MLflow on the other core while this one imports torch
            try:
                import torch

                # One thread: a suggestion's tensors are small, and a second thread only competes with the tracking
                # process (and the previous command's): 0.3 s faster per call here (benchmarks/README.md).
                torch.set_num_threads(1)
                from optimize.service import suggest as run_suggest

                kw = {"progress": status.update, "open_run": tracking.open_run, "defer": tracking.defer}
                doc = _run(run_suggest, cfg, n, seed, **kw).to_json()
            finally:
                tracking.close()
    if format is Format.json:
        _emit_json(doc)
        return
    title = f"{cfg.name}: batch {doc['batch']} ({doc['strategy']}, data {doc['data_version']})"
    found = doc["suggestions"]
    cells = [[_mean_std(**s["predicted"][t]) for t in cfg.target_names] for s in found]
    for table in _recipe_tables(
        cfg, title, [s["id"] for s in found], [s["inputs"] for s in found], cells, "predicted: mean ± std"
    ):
        Console().print(table)
    # where cross-validation chose another model to predict with than the one the recipes were chosen with (a constant
    # at a few rows predicts the same for every recipe), say so
    headers, differ = {t.name: t.header for t in cfg.targets}, {}
    for name, explores in doc.get("explored_with", {}).items():
        if doc["models"][name] != explores:
            differ.setdefault((doc["models"][name], explores), []).append(headers[name])
    for (predicts, explores), names in differ.items():
        Console().print(f"{', '.join(names)} predicted by {predicts}; suggested with {explores} (models.explore_with)")
    by = f"\nproposed by kiln serve at {url}" if url else ""
    seconds = doc["seconds"]["total"]
    _err(ctx).print(
        f"template: {doc['template']}\nMLflow run: {doc['mlflow_run_id']}  ({seconds:.1f} s){by}", soft_wrap=True
    )


@app.command()
def ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="filled batch CSV (e.g. a template from kiln suggest)")],
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
    retrain: Annotated[
        bool, typer.Option("--retrain/--no-retrain", help="refit the models now (else the next suggest does)")
    ] = True,
    spectra: Annotated[
        Path | None,
        typer.Option(
            help="folder of emission spectra named <experiment_id>.csv (wavelength_nm,intensity): emission_nm and "
            "fwhm_nm are read off them (a `spectrum` column names a file per row instead)"
        ),
    ] = None,
) -> None:
    """Validate a filled batch, add it to the campaign (append-only), retrain and log to MLflow."""
    from optimize.service import ingest as run_ingest

    with _err(ctx).status("ingesting") as status:
        cfg, result = _call(run_ingest, config, format, file, retrain, progress=status.update, spectra_dir=spectra)
    if result is None:
        return
    amended = f", amended {result.amended} cells of earlier experiments" if result.amended else ""
    Console().print(
        f"added {result.rows} experiments{amended} as {result.batch_file.name} (data version {result.data_version})"
    )
    if result.retrain is not None:
        _print_retrain(ctx, cfg, result.retrain)


@app.command()
def retrain(
    ctx: typer.Context,
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
    reselect: Annotated[
        bool,
        typer.Option(
            "--reselect/--keep-choice",
            help="compare every candidate again, or keep the last choice while little data was added (as ingest)",
        ),
    ] = True,
) -> None:
    """Refit all surrogates: per target, the model with the best cross-validated NLPD wins."""
    from optimize.service import retrain as run_retrain

    with _err(ctx).status("retraining") as status:
        cfg, result = _call(run_retrain, config, format, reselect=reselect, progress=status.update)
    if result is None:
        return
    _print_retrain(ctx, cfg, result)


def _print_retrain(ctx: typer.Context, cfg, result) -> None:
    console = Console()
    table = Table(
        title=f"model selection on data {result.data_version}",
        caption="cross-validated; * = chosen (lowest NLPD); cov90: share of held-out rows in the 90 % interval",
        title_justify="left",
        caption_justify="left",
    )
    headers = {t.name: t.header for t in cfg.targets}
    for col in ("target", "model", "rows", "RMSE", "NLPD", "cov90"):
        table.add_column(col, justify="left" if col in ("target", "model") else "right", overflow="fold")
    for r in result.targets:
        if not r.cv:
            table.add_row(headers[r.target], f"* {r.chosen}", str(r.n_rows), "", "", "", end_section=True)
            continue
        for i, (label, sc) in enumerate(r.cv.items()):
            mark = "* " if label == r.chosen else "  "
            table.add_row(
                headers[r.target] if i == 0 else "",
                mark + label,
                str(r.n_rows) if i == 0 else "",
                _fmt(sc["rmse"]),
                _fmt(sc["nlpd"]),
                _fmt(sc["coverage90"]),
                end_section=i == len(r.cv) - 1,
            )
    console.print(table)
    for label in sorted({r.explorer for r in result.targets if r.explorer}):
        names = ", ".join(headers[r.target] for r in result.targets if r.explorer == label)
        console.print(f"suggestions explore {names} with {label} (models.explore_with)")
    for r in result.targets:
        if r.note:
            console.print(f"{headers[r.target]}: {r.note}")
        if r.importance:
            ranked = sorted(r.importance.items(), key=lambda kv: -kv[1]["mean"])
            console.print(f"{headers[r.target]} relies on: " + ", ".join(f"{k} {v['mean']:.3g}" for k, v in ranked))
    _err(ctx).print(f"MLflow run: {result.mlflow_run_id}  ({result.seconds:.1f} s)")


@app.command()
def predict(
    file: Annotated[Path, typer.Argument(help="CSV of recipes: the input columns (experiment_id optional)")],
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
) -> None:
    """Predict every target (mean and std) for the recipes in FILE with the current models."""
    from optimize.service import predict as run_predict

    cfg, result = _call(run_predict, config, format, file)
    if result is None:
        return
    rows = result.recipes.to_dict(orient="records")
    cells = [
        [
            _mean_std(float(result.predicted[t][0][i]), float(result.predicted[t][1][i]))
            if t in result.predicted
            else ""
            for t in cfg.target_names
        ]
        for i in range(len(rows))
    ]
    models = ", ".join(f"{t.header} {result.models[t.name]}" for t in cfg.targets if t.name in result.models)
    title = f"recipes in {file.name} (data {result.data_version})"
    for table in _recipe_tables(cfg, title, [str(r["experiment_id"]) for r in rows], rows, cells, "predicted"):
        Console().print(table)
    Console().print(f"models: {models}")


@app.command()
def benchmark(
    ctx: typer.Context,
    oracle: Annotated[str | None, typer.Option(help="simulator FILE.py[:FUNC] with measure(recipe) -> dict")] = None,
    lookup: Annotated[
        Path | None, typer.Option(help="CSV of recipes with their measured targets (a discrete pool)")
    ] = None,
    strategies: Annotated[
        str, typer.Option(help="comma-separated: botorch, random, sobol, tpe; peers (extra `peers`): ax, baybe")
    ] = "botorch,random,sobol,tpe",
    seeds: Annotated[int, typer.Option(min=1, help="repetitions (seeds F..F+K-1, F = --first-seed)")] = 10,
    first_seed: Annotated[
        int, typer.Option(min=0, help="the first seed (to extend a study, e.g. a slow peer, on more seeds)")
    ] = 0,
    initial: Annotated[
        int,
        typer.Option(
            min=0, help="initial design size (same for every strategy; 0: start suggesting, e.g. from a prior)"
        ),
    ] = 8,
    batches: Annotated[int, typer.Option(min=1, help="batches after the initial design")] = 6,
    batch_size: Annotated[int, typer.Option(min=1, help="experiments per batch")] = 4,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="processes running (strategy, seed) cells, one torch thread each [default: the machine's cores]"
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="run the cells as Ray tasks (1 CPU each) on this cluster: HOST:PORT of its head, or auto "
            "(extra `ray`; kiln must be installed on its nodes) [default: local processes]"
        ),
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="comma-separated model candidates for kiln's loop instead of the config's")
    ] = None,
    explore_with: Annotated[
        str | None,
        typer.Option(
            help="the model kiln's loop explores with: gp-onehot, gp-descriptors, gp, or chosen (the cross-validation"
            " winner) [default: the config's models.explore_with]"
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="SECTION.KEY=VALUE: an acquisition or models setting of kiln's loop instead of the config's, the value"
            " read as YAML (repeat; e.g. --set acquisition.kind=qlognehvi --set acquisition.mc_samples=64)",
        ),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
) -> None:
    """Compare optimizers on a simulator (default: the built-in virtual lab) or a lookup table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from optimize.benchmark import BenchmarkSettings, experiments_to_reach
    from optimize.config import parse_settings, with_models, with_settings
    from optimize.parallel import default_workers
    from optimize.service import benchmark as run_benchmark

    cfg = _run(_load, config)
    if models or explore_with:
        candidates = tuple(m.strip() for m in models.split(",") if m.strip()) if models else None
        cfg = _run(with_models, cfg, candidates, explore_with)
    if set_:
        cfg = _run(with_settings, cfg, _run(parse_settings, set_))
    names = tuple(s.strip() for s in strategies.split(",") if s.strip())
    settings = _run(
        BenchmarkSettings, names, tuple(range(first_seed, first_seed + seeds)), initial, batches, batch_size
    )
    total = len(names) * seeds * (batches + 1)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err(ctx),
        transient=True,
    ) as bar:
        task = bar.add_task("benchmark", total=total)

        def progress(strategy: str, seed: int, batch: int) -> None:
            bar.update(task, advance=1, description=f"{strategy} seed {seed} batch {batch}")

        result = _run(run_benchmark, cfg, settings, oracle, lookup, progress, workers or default_workers(), ray_address)
    if format is Format.json:
        _emit_json(result.to_json())
        return
    table = Table(
        title=f"{cfg.name} on {result.problem}: hypervolume / best attainable, median [IQR] over {seeds} seeds"
    )
    table.add_column("experiments", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    by = {(r["strategy"], r["batch"]): r for r in result.summary}
    for b in range(batches + 1):
        n_exp = by[(names[0], b)]["n_experiments"]
        table.add_row(
            str(n_exp),
            *[f"{by[(s, b)]['hv_median']:.3f} [{by[(s, b)]['hv_q25']:.2f}-{by[(s, b)]['hv_q75']:.2f}]" for s in names],
        )
    table.add_row("to 90 %", *[_fmt(experiments_to_reach(result.rows, s, 0.9)) for s in names], end_section=True)
    table.add_row("seconds", *[f"{by[(s, batches)]['seconds_median']:.1f}" for s in names])
    Console().print(table)
    _err(ctx).print(f"MLflow run: {result.mlflow_run_id}")


@app.command()
def history(
    ctx: typer.Context,
    config: ConfigOpt = DEFAULT_CONFIG,
    format: FormatOpt = Format.table,
    plot: Annotated[
        Path | None,
        typer.Option(help="write Pareto front, progress and partial-dependence PNGs to this folder (and MLflow)"),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="every value each cell of this experiment has had, and where each came from"),
    ] = None,
) -> None:
    """Experiments so far, best value per target, the measured Pareto set and pending suggestions."""
    from optimize.service import history as run_history

    if experiment is not None:
        _print_cell_history(config, format, experiment)
        return
    cfg, result = _call(run_history, config, format, True, plot)
    if result is None:
        return
    console = Console()
    pareto_ids = set(result.pareto["experiment_id"])
    ids, recipes, cells = [], [], []
    for _, row in result.experiments.iterrows():
        mark = ("x " if row.get("status") == "failed" else "") + ("* " if row["experiment_id"] in pareto_ids else "")
        ids.append(f"{mark}{row['experiment_id']}")
        recipes.append({k: row[k] for k in cfg.input_names})
        values = []
        for t in cfg.target_names:
            v, q = _fmt(row[t]), row.get(f"{t}_qualifier", "")
            values.append(f"{q}{v}" if v and q in ("<", ">") else v)
        cells.append(values)
    title = f"{cfg.name}: {len(result.experiments)} experiments (data {result.data_version})"
    note = "* = Pareto set" + (", x = synthesis failed" if (result.experiments.get("status") == "failed").any() else "")
    for table in _recipe_tables(cfg, title, ids, recipes, cells, "measured", note):
        console.print(table)
    best = Table(title="best so far")
    best.add_column("target")
    best.add_column("value", justify="right")
    best.add_column("experiment")
    for t in cfg.targets:
        b = result.best[t.name]
        best.add_row(f"{t.header} ({t.short})", _fmt(b["value"]), b["experiment_id"] or "")
    console.print(best)
    console.print(f"Pareto set (all objectives measured): {', '.join(sorted(pareto_ids)) or 'none yet'}")
    console.print(f"pending suggestions: {', '.join(result.pending['suggestion_id']) or 'none'}")
    console.print(f"MLflow runs: {len(result.runs)} (kiln ui to browse)")
    for path in result.plots:
        _err(ctx).print(f"plot: {path}")


def _print_cell_history(config: Path, format: Format, experiment: str) -> None:
    from optimize.campaign import cell_history, load_campaign

    cfg = _run(_load, config)
    cells = _run(cell_history, _run(load_campaign, cfg), experiment)
    if format is Format.json:
        _emit_json({"experiment_id": experiment, "cells": cells.to_dict(orient="records")})
        return
    table = Table(title=f"{experiment}: every value, oldest first (* = current)", title_justify="left")
    for name in ("cell", "value", "kind", "from"):
        table.add_column(name, no_wrap=True)
    table.add_column("reason", overflow="fold")
    sources: dict[tuple, int] = {}
    for c in cells.to_dict(orient="records"):
        ref = sources.setdefault((c["file"], c["row"], c["ingested_utc"], c["by"], c["source"]), len(sources) + 1)
        mark = "*" if c["current"] else " "
        table.add_row(f"{mark}{c['column']}", c["value"], c["kind"], f"[{ref}]", c["reason"])
    console = Console()
    console.print(table)
    for (file, row, when, by, source), ref in sources.items():
        where = f"{file}, row {row}" if row != "" else file
        who = " ".join(x for x in (f"ingested {when}" if when else "", f"by {by}" if by else "") if x)
        console.print(f"[{ref}] {where}" + (f", {who}" if who else "") + (f": {source}" if source else ""))


@app.command()
def ui(
    ctx: typer.Context,
    config: ConfigOpt = DEFAULT_CONFIG,
    port: Annotated[int, typer.Option(help="port to listen on")] = 5000,
    host: Annotated[str, typer.Option(help="interface; 127.0.0.1 keeps the UI private to this machine")] = "127.0.0.1",
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="MLflow's basic-auth app (users, passwords, permissions); needed for any non-loopback --host. "
            "Its first start takes the admin password from MLFLOW_AUTH_ADMIN_PASSWORD",
        ),
    ] = False,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            help="the runs' database, e.g. postgresql+psycopg://kiln@db:5432/kiln (password: PGPASSWORD) "
            "[default: the campaign's store]"
        ),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(help="where the server keeps the artifacts it serves [default: <tracking_dir>/artifacts]"),
    ] = None,
) -> None:
    """Serve the MLflow UI (a tracking server for the whole lab) over the campaign's store or a database."""
    from optimize.server import mlflow_server_command, serve

    cfg = _run(_load, config)
    cmd, env = _run(mlflow_server_command, cfg, host, port, auth, backend_store_uri, artifacts_destination)
    login = " with login (MLflow basic auth)" if auth else ""
    store = _redacted(backend_store_uri or cfg.tracking_uri)
    _err(ctx).print(f"MLflow UI for {cfg.name} at http://{host}:{port}{login}  (store {store}; Ctrl-C to stop)")
    raise typer.Exit(serve(cmd, env=env))


@app.command()
def serve(
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", "-c", help="campaign YAML, or a folder of them; repeat for more [default: seed]"),
    ] = None,
    host: Annotated[str, typer.Option(help="interface; any but loopback needs keys")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    keys_file: Annotated[Path, typer.Option(help="keys from `kiln keys create` (used if it exists)")] = Path(
        "kiln-keys.yaml"
    ),
    max_body_mb: Annotated[
        float | None, typer.Option(help="largest request body accepted, MiB [default: the data files' limit, 10]")
    ] = None,
) -> None:
    """Serve campaigns over HTTP for lab robots, LIMS and colleagues (OpenAPI docs at /docs)."""
    from optimize.api import serve_campaigns

    limit = {} if max_body_mb is None else {"max_body": int(max_body_mb * 2**20)}
    _run(serve_campaigns, config or [DEFAULT_CONFIG], host, port, keys_file, **limit)


keys_app = typer.Typer(help="API keys of kiln serve (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="read (history, predict) or write (also suggest, ingest)")],
    keys_file: Annotated[Path, typer.Option(help="the keys file (created if absent)")] = Path("kiln-keys.yaml"),
) -> None:
    """Create a key; its token is printed once, alone on the last line of stdout (the file keeps a hash)."""
    from optimize.keys import create_key

    token = _run(create_key, keys_file, role)
    Console(stderr=True).print(f"{role} key added to {keys_file}; keep the token below, it is not stored")
    sys.stdout.write(token + "\n")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="folder for the new campaign (created)")],
    name: Annotated[str | None, typer.Option(help="campaign name (default: the folder's name)")] = None,
    template: Annotated[Path, typer.Option(help="campaign YAML to start from")] = DEFAULT_CONFIG,
    prior: Annotated[
        Path | None, typer.Option(help="another campaign's data folder to learn from too, e.g. datasets/cspbbr3_sio2")
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Start a new campaign: DIR/campaign.yaml (from the template), empty data, its own MLflow store."""
    from optimize.scaffold import init_campaign

    path = _run(init_campaign, directory, template, name, prior)
    if format is Format.json:
        _emit_json(
            {"config": str(path), "data_dir": str(path.parent / "data"), "tracking_dir": str(path.parent / "mlruns")}
        )
        return
    Console().print(f"created {path}\nedit its inputs and targets, then: kiln validate-config --config {path}")


@app.command("validate-config")
def validate_config(config: ConfigOpt = DEFAULT_CONFIG, format: FormatOpt = Format.table) -> None:
    """Check a campaign YAML and every data file it points to; summarize them."""
    from optimize.scaffold import validate_campaign

    cfg, result = _call(validate_campaign, config, format)
    if result is None:
        return
    table = Table(title=f"{result.name}: valid ({result.config})", show_header=False)
    for key, value in result.to_json().items():
        if key in ("config", "name"):
            continue
        shown = (
            ", ".join(f"{k} {v}" for k, v in value.items())
            if isinstance(value, dict)
            else ", ".join(value)
            if isinstance(value, list)
            else str(value)
        )
        table.add_row(key.replace("_", " "), shown or "none")
    Console().print(table)


def run() -> None:
    """The ``kiln`` command: :data:`app`, then leave without tearing the interpreter down.

    Freeing torch's and the other libraries' modules one by one took a fresh ``kiln suggest`` half a second after
    its answer was out. Outputs are flushed and logging shut down first; a command that started Ray leaves the
    usual way (Ray's exit handler stops the local cluster it started)."""
    try:
        app()
        code = 0
    except SystemExit as e:
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    if "ray" in sys.modules:
        raise SystemExit(code)
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
