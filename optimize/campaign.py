"""The campaign store: batches of experiments (append-only), the suggestion ledger, batch templates.

Layout of a campaign's ``data_dir``::

    batches/NNN_<hash>.csv   experiments, each file kept byte-for-byte as received
    batches/NNN_<hash>.yaml  when it was ingested, by whom, under which name, its rows' spectra (written first)
    spectra/<sha256>.csv     emission spectra named by batch rows, by content (peak and FWHM are read off them)
    suggestions.csv          every suggested recipe with its predictions (the ledger)
    templates/<batch>.csv    a batch to fill in at the bench, then ``kiln ingest`` it

The campaign's data set is the union of its batches; its *version* is a hash of their contents.
A batch row whose id is already in the campaign amends that experiment (a late measurement, or a
correction with a reason, see :func:`~optimize.validation.parse_batch`); the experiments table is the
latest value of each cell, and ``Campaign.amendments`` every change with the file it came from.
A suggestion is pending until an experiment with its id has been ingested.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from optimize.config import CampaignConfig, ContinuousInput, _hint
from optimize.errors import DataError
from optimize.fileio import atomic_write, campaign_lock, sha256
from optimize.validation import (
    AMENDMENT_COLUMNS,
    BATCH,
    ID,
    PEAK_TARGET,
    SPECTRUM,
    STATUS,
    WIDTH_TARGET,
    ParsedBatch,
    actual_column,
    experiment_columns,
    parse_batch,
    planned_column,
    qualifier_column,
    read_data_file,
    table_columns,
)

BATCHES = "batches"
SPECTRA = "spectra"
LEDGER = "suggestions.csv"
TEMPLATES = "templates"
SUGGESTION_ID = "suggestion_id"
_BATCH_NAME = re.compile(r"^(\d{3,})_.*\.csv$")


@dataclass(frozen=True)
class BatchFile:
    """A stored batch; ``ingested_utc``, ``by`` and ``received_as`` from its provenance file (empty for a batch
    placed by hand, e.g. the seed data)."""

    path: Path
    sha256: str
    rows: int  # new experiments
    ingested_utc: str = ""
    by: str = ""
    received_as: str = ""
    amended: int = 0  # cells of earlier experiments it changed
    spectra: tuple[tuple[str, str], ...] = ()  # (experiment id, SHA-256 of its spectrum file under spectra/)

    @classmethod
    def stored(cls, path: Path, digest: str, rows: int, amended: int = 0) -> BatchFile:
        """A batch file on disk, with what its provenance file says."""
        import yaml

        meta_path = path.with_suffix(".yaml")
        meta = {}
        if meta_path.is_file():
            try:
                loaded = yaml.safe_load(meta_path.read_text())
                meta = loaded if isinstance(loaded, dict) else {}
            except (OSError, yaml.YAMLError):
                meta = {}  # provenance is informative: a damaged file never blocks the campaign
        spectra = meta.get("spectra") if isinstance(meta.get("spectra"), dict) else {}
        return cls(
            path,
            digest,
            rows,
            *(str(meta.get(k, "")) for k in ("ingested_utc", "by", "received_as")),
            amended,
            tuple((str(k), str(v)) for k, v in spectra.items()),
        )


@dataclass(frozen=True)
class PriorData:
    """A prior campaign's experiments (``config.prior``), validated against this campaign's config."""

    name: str
    experiments: pd.DataFrame
    batches: tuple[BatchFile, ...]

    def measured(self, target: str) -> pd.DataFrame:
        """Rows where ``target`` was measured."""
        return measured_rows(self.experiments, target)


def measured_rows(experiments: pd.DataFrame, target: str) -> pd.DataFrame:
    """The rows of ``experiments`` where ``target`` was measured, renumbered from 0."""
    return experiments[experiments[target].notna()].reset_index(drop=True)


@dataclass(frozen=True)
class Campaign:
    """A snapshot of a campaign's data: experiments, the files they came from, the ledger and the
    prior campaign's experiments (``None`` without ``config.prior``)."""

    config: CampaignConfig
    experiments: pd.DataFrame
    batches: tuple[BatchFile, ...]
    ledger: pd.DataFrame
    prior: PriorData | None = None
    # every amendment (AMENDMENT_COLUMNS + the stored file, when and by whom), in the order applied
    amendments: pd.DataFrame | None = None
    origin: tuple[str, ...] = ()  # per experiment row: the stored batch file that introduced it

    @cached_property
    def version(self) -> str:
        """12-hex-digit hash of the batch contents, in order, and the prior's: the data version logged
        with every model."""
        prior = self.prior.batches if self.prior is not None else ()
        return sha256("".join(b.sha256 for b in (*self.batches, *prior)).encode())[:12]

    @property
    def pending(self) -> pd.DataFrame:
        """Suggested recipes not yet ingested (ledger rows)."""
        done = set(self.experiments[ID])
        return self.ledger[~self.ledger[SUGGESTION_ID].isin(done)].reset_index(drop=True)

    def measured(self, target: str) -> pd.DataFrame:
        """Rows where ``target`` was measured."""
        return measured_rows(self.experiments, target)

    @property
    def failed(self) -> pd.Series:
        """Per experiment: did the synthesis fail (``status`` = failed)?"""
        return self.experiments[STATUS] == "failed"


CELL_HISTORY_COLUMNS = ["column", "value", "kind", "current", "file", "row", "ingested_utc", "by", "reason", "source"]


def cell_history(campaign: Campaign, experiment_id: str) -> pd.DataFrame:
    """Every value each cell of one experiment has had (columns :data:`CELL_HISTORY_COLUMNS`), oldest first: the
    planned inputs and the values of the row that introduced it (``kind`` original), then each amendment
    (measurement or correction) with the stored file, row, when, by whom, the reason and the source given.

    Raises:
        KilnError: no experiment has this id.
    """
    from optimize.errors import KilnError

    config, experiments = campaign.config, campaign.experiments
    hits = experiments.index[experiments[ID] == experiment_id]
    if not len(hits):
        close = _hint(experiment_id, list(experiments[ID]))
        raise KilnError(f"no experiment {experiment_id!r} in {config.name}{close}; `kiln history` lists them")
    i = int(hits[0])
    row = experiments.loc[i]
    amendments = campaign.amendments if campaign.amendments is not None else _no_amendments()
    changes = amendments[amendments["experiment_id"] == experiment_id]
    origin = campaign.origin[i] if i < len(campaign.origin) else ""
    batch = next((b for b in campaign.batches if b.path.name == origin), None)
    first = {c: ch for c, ch in reversed(list(zip(changes["column"], changes.to_dict("records"))))}
    out = []
    spectra = {b.path.name: dict(b.spectra) for b in campaign.batches if b.spectra}

    def source(file: str, column: str, given: str) -> str:
        """The row's source, and for a value read off a spectrum, the spectrum's hash (its provenance)."""
        digest = spectra.get(file, {}).get(experiment_id) if column in (PEAK_TARGET, WIDTH_TARGET) else None
        return "; ".join(x for x in (given, f"spectrum sha256 {digest[:12]}" if digest else "") if x)

    def value(column: str) -> str:
        if column in first:  # the value before the first change of this cell
            return str(first[column]["previous"])
        if column.endswith("_actual"):
            name = column[: -len("_actual")]
            return "" if pd.isna(row[planned_column(name)]) else _fmt(row[name])
        v = row[column]
        q = row.get(qualifier_column(column), "") if column in config.target_names else ""
        return "" if pd.isna(v) else f"{q}{_fmt(v)}"

    columns = [*config.input_names, *config.target_names, STATUS]
    columns += [actual_column(n) for n in config.input_names if planned_column(n) in experiments.columns]
    for column in columns:
        if column in config.input_names:
            planned = row.get(planned_column(column))
            v = _fmt(row[column] if planned is None or pd.isna(planned) else planned)
        else:
            v = value(column)
        if v == "":
            continue
        out.append(
            {
                "column": column,
                "value": v,
                "kind": "planned" if column in config.input_names else "original",
                "current": column not in first,
                "file": origin,
                "row": "",
                "ingested_utc": batch.ingested_utc if batch else "",
                "by": batch.by if batch else "",
                "reason": "",
                "source": source(origin, column, str(row.get("source", ""))),
            }
        )
    last = {c: k for k, c in enumerate(changes["column"])}
    for k, ch in enumerate(changes.to_dict("records")):
        out.append(
            {
                "column": ch["column"],
                "value": f"{ch['qualifier']}{_fmt(ch['value'])}",
                "kind": ch["kind"],
                "current": last[ch["column"]] == k,
                **{c: ch[c] for c in ("file", "row", "ingested_utc", "by", "reason")},
                "source": source(ch["file"], ch["column"], ch["source"]),
            }
        )
    return pd.DataFrame(out, columns=CELL_HISTORY_COLUMNS)


def ledger_columns(config: CampaignConfig) -> list[str]:
    cols = [SUGGESTION_ID, BATCH, "created_utc", *config.input_names]
    for t in config.target_names:
        cols += [f"{t}_mean", f"{t}_std"]
    return cols + ["acquisition_value", "data_version", "mlflow_run_id"]


def _batch_files(data_path: Path) -> list[Path]:
    folder = data_path / BATCHES
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _BATCH_NAME.match(p.name))


class ParsedBatches:
    """Batches already validated, by content hash: a long-lived process (``kiln serve``) re-reads a campaign of
    hundreds of batches after every ingest without validating each file again (3 ms a file). One per config.
    Batches that amend earlier ones are validated against the campaign each time (they are not kept)."""

    def __init__(self) -> None:
        self._batches: dict[str, ParsedBatch] = {}

    def parse(self, config: CampaignConfig, path: Path, data: bytes, spectra=None) -> ParsedBatch | None:
        digest = sha256(data)
        if digest not in self._batches:
            try:
                self._batches[digest] = parse_batch(data, config, str(path), None, spectra)
            except DataError:
                return None  # perhaps an amendment, which needs the campaign: validated in context
        return self._batches[digest]


def load_campaign(config: CampaignConfig, parsed: ParsedBatches | None = None) -> Campaign:
    """Read and validate every batch and the ledger of a campaign, and its prior's batches (files validated
    before are taken from ``parsed``)."""
    paths = _batch_files(config.data_path)
    batches = [(p, p.read_bytes()) for p in paths]
    return campaign_from_batches(config, batches, _read_ledger(config), load_prior(config), parsed)


def load_prior(config: CampaignConfig) -> PriorData | None:
    """The experiments of ``config.prior`` (validated with this campaign's columns), or ``None``.

    Raises:
        DataError: the prior's folder has no batch files, or one of them is invalid.
    """
    if config.prior is None:
        return None
    paths = _batch_files(config.prior_path)
    if not paths:
        raise DataError(
            str(config.prior_path / BATCHES),
            "the prior campaign has no batch files (NNN_name.csv)",
            "point prior.data_dir in the campaign YAML at another campaign's data folder, or remove 'prior'",
        )
    view = _parse_batches(config, [(p, p.read_bytes()) for p in paths])
    return PriorData(config.prior.name, view.experiments, view.files)


def campaign_from_batches(
    config: CampaignConfig,
    batches: list[tuple[Path, bytes]],
    ledger: pd.DataFrame | None = None,
    prior: PriorData | None = None,
    parsed: ParsedBatches | None = None,
) -> Campaign:
    """A campaign from batch files' ``(path, bytes)``, validated as on disk (also used in memory by benchmarks)."""
    view = _parse_batches(config, batches, parsed)
    if ledger is None:
        ledger = pd.DataFrame(columns=ledger_columns(config))
    return Campaign(config, view.experiments, view.files, ledger, prior, view.amendments, view.origin)


@dataclass(frozen=True)
class _View:
    experiments: pd.DataFrame
    files: tuple[BatchFile, ...]
    amendments: pd.DataFrame
    origin: tuple[str, ...]


def _parse_batches(
    config: CampaignConfig, batches: list[tuple[Path, bytes]], parsed: ParsedBatches | None = None
) -> _View:
    """Validate the batches in order; a batch that names experiments of earlier ones amends them."""
    frames: list[pd.DataFrame] = []
    files: list[BatchFile] = []
    changes: list[pd.DataFrame] = []
    ids: set[str] = set()
    experiments = None  # the current view, built when a batch amends
    for path, data in batches:
        meta = BatchFile.stored(path, sha256(data), 0)
        spectra = stored_spectra(path.parent.parent / SPECTRA, meta.spectra, str(path)) if meta.spectra else None
        batch = parsed.parse(config, path, data, spectra) if parsed is not None else None
        if batch is None and ids.isdisjoint(_named_ids(data)):
            batch = parse_batch(data, config, str(path), None, spectra)  # new experiments only: no view needed
        elif batch is None or not ids.isdisjoint(batch.experiments[ID]):
            if experiments is None or len(experiments) != len(ids):
                experiments = _experiments(config, frames, changes)
            batch = parse_batch(data, config, str(path), experiments, spectra)
        stored = replace(meta, rows=len(batch.experiments), amended=len(batch.amendments))
        ids.update(batch.experiments[ID])
        frames.append(batch.experiments)
        files.append(stored)
        if not batch.amendments.empty:
            changes.append(batch.amendments.assign(file=path.name, ingested_utc=stored.ingested_utc, by=stored.by))
            experiments = None
    experiments = _experiments(config, frames, changes)
    amendments = pd.concat(changes, ignore_index=True) if changes else _no_amendments()
    origin = tuple(f.path.name for f, frame in zip(files, frames) for _ in range(len(frame)))
    return _View(experiments, tuple(files), amendments, origin)


def _named_ids(data: bytes) -> set[str]:
    """The values of a CSV's ``experiment_id`` column, read quickly (empty if the file cannot be read: its
    validation then says why)."""
    import csv

    try:
        rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        header = [h.strip() for h in next(rows)]
        j = header.index(ID)
        return {r[j].strip() for r in rows if len(r) > j}
    except (UnicodeDecodeError, StopIteration, ValueError, csv.Error):
        return set()


def _no_amendments() -> pd.DataFrame:
    return pd.DataFrame(columns=[*AMENDMENT_COLUMNS, "file", "ingested_utc", "by"])


def _experiments(config: CampaignConfig, frames: list[pd.DataFrame], changes: list[pd.DataFrame]) -> pd.DataFrame:
    """The experiments of ``frames`` with ``changes`` (amendments) applied in order: the latest value per cell."""
    experiments = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=experiment_columns(config))
    for t in config.target_names:
        experiments[t] = experiments[t].astype(float)
    if not changes:
        return experiments
    row = {eid: i for i, eid in enumerate(experiments[ID])}
    for change in pd.concat(changes, ignore_index=True).itertuples(index=False):
        i, column = row[change.experiment_id], change.column
        if column == STATUS:
            experiments.loc[i, STATUS] = change.value
        elif column.endswith("_actual"):
            name = column[: -len("_actual")]
            if pd.isna(experiments.loc[i, planned_column(name)]):
                experiments.loc[i, planned_column(name)] = experiments.loc[i, name]
            experiments.loc[i, name] = float(change.value)
        else:
            experiments.loc[i, column] = float(change.value)
            experiments.loc[i, qualifier_column(column)] = change.qualifier
    return experiments


def _read_ledger(config: CampaignConfig) -> pd.DataFrame:
    path = config.data_path / LEDGER
    cols = ledger_columns(config)
    if not path.exists():
        return pd.DataFrame(columns=cols)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataError(
            str(path), f"ledger columns {missing} are missing", "restore the file from version control", row=1
        )
    for inp in config.inputs:
        if isinstance(inp, ContinuousInput):
            frame[inp.name] = frame[inp.name].astype(float)
    return frame[cols]


def ingest_batch(
    config: CampaignConfig, file: Path, by: str | None = None, spectra_dir: Path | None = None
) -> BatchFile:
    """Validate a filled batch file and add it to the campaign (see :func:`add_batch`); spectra named in its
    ``spectrum`` column are read relative to its folder, and ``spectra_dir/<experiment_id>.csv`` for the others."""
    file = Path(file)
    data = read_data_file(file)
    return add_batch(config, data, str(file), by=by, spectra=read_spectra(data, str(file), file.parent, spectra_dir))


def add_batch(
    config: CampaignConfig,
    data: bytes,
    file: str,
    parsed: ParsedBatches | None = None,
    by: str | None = None,
    spectra: Mapping[str, bytes] | None = None,
) -> BatchFile:
    """Validate a filled batch (the CSV's bytes; ``file`` names it in errors) and add it to the campaign,
    atomically and under the lock. ``spectra``: experiment id -> the bytes of its spectrum file (see
    :func:`read_spectra`), stored by content under ``spectra/``. The batch's provenance (when, ``by`` whom,
    default the OS user, ``file``, its spectra's hashes) is written before it; a provenance file without its
    batch (a crash between the two) is ignored, as is a spectrum no batch names.

    Raises:
        DataError: the batch or a spectrum is invalid, or the batch was already ingested; nothing is written then.
    """
    import getpass

    import yaml

    from optimize.spectra import measure_spectrum

    digest = sha256(data)
    measured = {eid: measure_spectrum(raw, f"spectrum of {eid} ({file})") for eid, raw in (spectra or {}).items()}
    with campaign_lock(config.data_path):
        campaign = load_campaign(config, parsed)
        for b in campaign.batches:
            if b.sha256 == digest:
                raise DataError(
                    file,
                    f"this batch was already ingested as {b.path.name}",
                    "nothing to do; ingest only new batches",
                )
        batch = parse_batch(data, config, file, campaign.experiments, measured)
        numbers = [int(_BATCH_NAME.match(b.path.name).group(1)) for b in campaign.batches]
        target = config.data_path / BATCHES / f"{max(numbers, default=-1) + 1:03d}_{digest[:12]}.csv"
        for eid, raw in (spectra or {}).items():
            stored = config.data_path / SPECTRA / f"{measured[eid].sha256}.csv"
            if not stored.exists():
                atomic_write(stored, raw)
        meta = {"ingested_utc": utc_now(), "by": by or getpass.getuser(), "received_as": Path(file).name}
        if measured:
            meta["spectra"] = {eid: m.sha256 for eid, m in measured.items()}
        atomic_write(target.with_suffix(".yaml"), yaml.safe_dump(meta, sort_keys=False).encode())
        atomic_write(target, data)
    spectra_ids = tuple((eid, m.sha256) for eid, m in measured.items())
    who = (meta["ingested_utc"], meta["by"], meta["received_as"])
    return BatchFile(target, digest, len(batch.experiments), *who, len(batch.amendments), spectra_ids)


def read_spectra(data: bytes, file: str, folder: Path, spectra_dir: Path | None = None) -> dict[str, bytes]:
    """Experiment id -> the bytes of its spectrum: the file its ``spectrum`` cell names (relative to ``folder``,
    the batch's), else ``spectra_dir/<experiment_id>.csv`` if that exists.

    Raises:
        DataError: a named spectrum file is missing or unreadable (naming the batch's row).
    """
    import csv

    try:
        rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error):
        return {}  # the batch's own validation says what is wrong
    header = [h.strip() for h in rows[0]] if rows else []
    if ID not in header:
        return {}
    out: dict[str, bytes] = {}
    j, k = header.index(ID), header.index(SPECTRUM) if SPECTRUM in header else None
    for line, r in enumerate(rows[1:], start=2):
        eid = r[j].strip() if len(r) > j else ""
        named = r[k].strip() if k is not None and len(r) > k else ""
        if named:
            path = folder / named
            if not path.is_file():
                raise DataError(
                    file, "spectrum file not found", f"put it at {path}", row=line, column=SPECTRUM, value=named
                )
            out[eid] = read_data_file(path)
        elif spectra_dir is not None and eid and (Path(spectra_dir) / f"{eid}.csv").is_file():
            out[eid] = read_data_file(Path(spectra_dir) / f"{eid}.csv")
    return out


def stored_spectra(folder: Path, hashes: tuple[tuple[str, str], ...], file: str) -> dict[str, Any]:
    """Experiment id -> :class:`~optimize.spectra.Spectrum` of a stored batch's spectra (``folder``: ``spectra/``).

    Raises:
        DataError: a spectrum the batch's provenance names is missing or was changed.
    """
    from optimize.spectra import measure_spectrum

    out = {}
    for eid, digest in hashes:
        path = folder / f"{digest}.csv"
        data = path.read_bytes() if path.is_file() else None
        if data is None or sha256(data) != digest:
            raise DataError(
                file,
                f"the spectrum of {eid} ({path}) is {'missing' if data is None else 'changed'}",
                "restore the campaign's spectra/ folder from its backup or version control",
            )
        out[eid] = measure_spectrum(data, str(path))
    return out


def next_batch_id(campaign: Campaign) -> str:
    """``S001``, ``S002``, ...: one more than the suggestion batches in the ledger."""
    used = [int(b[1:]) for b in campaign.ledger[BATCH] if re.fullmatch(r"S\d+", b)]
    return f"S{max(used, default=0) + 1:03d}"


def record_suggestions(config: CampaignConfig, rows: pd.DataFrame) -> Path:
    """Append suggestion rows (columns :func:`ledger_columns`) to the ledger, atomically."""
    path = config.data_path / LEDGER
    with campaign_lock(config.data_path):
        old = _read_ledger(config)
        new = (
            pd.concat([old, rows[ledger_columns(config)]], ignore_index=True)
            if len(old)
            else rows[ledger_columns(config)]
        )
        atomic_write(path, csv_bytes(new))
    return path


def write_template(config: CampaignConfig, batch_id: str, recipes: pd.DataFrame) -> Path:
    """A batch file for the bench: ids, batch, inputs and empty target/qualifier columns."""
    cols = table_columns(config)
    out = pd.DataFrame({c: [""] * len(recipes) for c in cols})
    out[ID] = list(recipes[SUGGESTION_ID])
    out[BATCH] = batch_id
    for name in config.input_names:
        out[name] = [_fmt(v) for v in recipes[name]]
    path = config.data_path / TEMPLATES / f"{batch_id}.csv"
    atomic_write(path, csv_bytes(out))
    return path


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return str(v)


def rows_csv(rows: list[dict], columns: list[str]) -> bytes:
    """CSV bytes of JSON-style rows (a mapping of column to value each), for the same validation as a file:
    ``columns`` (e.g. a template's), then any other key (which validation names); a missing key, ``None`` and
    NaN are empty cells; numbers are written whole (no rounding: they are measurements)."""
    columns = list(dict.fromkeys([*columns, *(k for row in rows for k in row)]))

    def cell(v: object) -> object:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v

    return csv_bytes(pd.DataFrame([[cell(row.get(c)) for c in columns] for row in rows], columns=columns))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
