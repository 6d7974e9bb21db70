"""Validation of experiment tables entering a campaign (seed batches, ingested batches, recipes).

One function, :func:`parse_table`, reads raw CSV bytes and returns a typed DataFrame or raises a
:class:`~optimize.errors.DataError` naming the file, row, column, value and fix.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pandas as pd

from optimize.config import CampaignConfig, CategoricalInput, ContinuousInput
from optimize.errors import DataError

ID = "experiment_id"
BATCH = "batch"
STATUS = "status"  # "" or "ok": the synthesis gave a product; "failed": no product / non-emissive
STATUSES = ("", "ok", "failed")
TEXT_COLUMNS = ("source", "notes")
REASON = "reason"  # why an amendment row corrects a value already in the campaign
SPECTRUM = "spectrum"  # an emission spectrum file (relative to the batch file): kiln reads peak and FWHM off it
PEAK_TARGET, WIDTH_TARGET = "emission_nm", "fwhm_nm"  # the targets a spectrum gives (DESIGN.md, section 3)
QUALIFIERS = ("", "<", ">", "~")
MAX_BYTES = 10 * 1024 * 1024


def qualifier_column(target: str) -> str:
    return f"{target}_qualifier"


def actual_column(name: str) -> str:
    """Optional batch-file column: the value a continuous input really reached (e.g. the furnace's log)."""
    return f"{name}_actual"


def planned_column(name: str) -> str:
    """Experiments-table column keeping the planned value where an actual one replaced it."""
    return f"{name}_planned"


def _continuous(config: CampaignConfig) -> list[str]:
    return [i.name for i in config.inputs if isinstance(i, ContinuousInput)]


def table_columns(config: CampaignConfig, with_targets: bool = True) -> list[str]:
    """Canonical column order of a batch file (and of a template to fill in)."""
    cols = [ID, BATCH, *config.input_names]
    if with_targets:
        for t in config.target_names:
            cols += [t, qualifier_column(t)]
        cols += [*(actual_column(n) for n in _continuous(config)), STATUS, *TEXT_COLUMNS]
    return cols


def experiment_columns(config: CampaignConfig) -> list[str]:
    """Columns of the parsed experiments table: inputs hold the values the models use (the actual
    value where one was recorded), ``<input>_planned`` the planned value then (else NaN)."""
    cols = [
        c for c in table_columns(config) if not c.endswith("_actual") or c[: -len("_actual")] not in _continuous(config)
    ]
    return cols + [planned_column(n) for n in _continuous(config)]


def _nearest(value: str, options: Iterable[str]) -> str:
    options = list(options)
    lower = {o.lower(): o for o in options}
    if value.strip().lower() in lower:
        return f"write {lower[value.strip().lower()]!r} (exact spelling)"
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.4)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}use one of {options}"


def read_data_file(path) -> bytes:
    """The bytes of a data file about to be validated; refuses a missing or oversized file before reading it."""
    from pathlib import Path

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DataError(
                str(path),
                f"the file is {size / 1e6:.0f} MB, above the {MAX_BYTES // 2**20} MiB limit",
                "split it into batches",
            )
        return path.read_bytes()
    except OSError as e:
        raise DataError(str(path), f"cannot read the file ({e.strerror})", "check the path") from None


def _decode(data: bytes, file: str) -> str:
    if not data.strip():
        raise DataError(file, "the file is empty", "export the batch with a header row and one row per experiment")
    if len(data) > MAX_BYTES:
        raise DataError(
            file,
            f"the file is {len(data) / 1e6:.0f} MB, above the {MAX_BYTES // 2**20} MiB limit",
            "split it into batches",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            file,
            f"byte {e.start} (line {line}) is not UTF-8 ({data[e.start : e.start + 1]!r})",
            "save the file as 'CSV UTF-8' in your spreadsheet program",
        ) from None


def _float(text: str, file: str, row: int, column: str) -> float:
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        if t.count(",") == 1 and t.replace(",", "", 1).replace("-", "", 1).isdigit():
            fix = f"use a decimal point: {t.replace(',', '.')}"
        else:
            fix = "write a plain number (decimal point, no units)"
        raise DataError(file, "not a number", fix, row=row, column=column, value=text) from None
    if not math.isfinite(v):
        raise DataError(
            file,
            "not a finite number",
            "write a finite number or leave the cell empty",
            row=row,
            column=column,
            value=text,
        )
    return v


@dataclass(frozen=True)
class ParsedBatch:
    """A validated batch: its new experiments (columns :func:`experiment_columns`) and its amendments, one
    change of one cell of an experiment already in the campaign per row (columns :data:`AMENDMENT_COLUMNS`)."""

    experiments: pd.DataFrame
    amendments: pd.DataFrame


# experiment_id, the changed column (a target, `<input>_actual` or status), the new value and qualifier, the
# value before, measurement (the cell was empty) or correction, and where it came from
AMENDMENT_COLUMNS = ["experiment_id", "column", "value", "qualifier", "previous", "kind", "reason", "source", "row"]


def parse_table(
    data: bytes,
    config: CampaignConfig,
    file: str,
    *,
    require_targets: bool = True,
    existing_ids: Iterable[str] = (),
    allow_extra_categories: bool = False,
) -> pd.DataFrame:
    """Parse and validate an experiment table (amendments refused: see :func:`parse_batch`).

    Args:
        data: raw bytes of the CSV file.
        config: the campaign it must fit.
        file: shown in error messages.
        require_targets: ``True`` for batches (target columns required, may be empty cells);
            ``False`` for recipe files (``kiln predict``), where only inputs are needed.
        existing_ids: experiment ids already in the campaign (duplicates are refused).
        allow_extra_categories: also accept categories known only by their descriptors (e.g. an
            untried carbonate), for predictions; never for experiments.

    Returns:
        One row per experiment, columns :func:`table_columns` (inputs typed, targets float with NaN
        for "not measured", qualifiers ``""``/``<``/``>``/``~``).
    """
    return _parse(data, config, file, require_targets, existing_ids, allow_extra_categories, None, None).experiments


def parse_batch(
    data: bytes,
    config: CampaignConfig,
    file: str,
    existing: pd.DataFrame | None,
    spectra: Mapping[str, Any] | None = None,
) -> ParsedBatch:
    """Parse and validate a batch for a campaign whose experiments so far are ``existing`` (its current view).

    A row whose ``experiment_id`` is in ``existing`` amends that experiment: a value in a cell that was empty is a
    late measurement (a target, or ``<input>_actual``); a different value in a filled cell is a correction and
    needs a ``reason``; an empty cell changes nothing; a planned input may be repeated but never changed. Other
    rows are new experiments, as in :func:`parse_table`. ``spectra``: experiment id -> its
    :class:`~optimize.spectra.Spectrum` (read by the caller), whose peak and FWHM fill the row's ``emission_nm``
    and ``fwhm_nm`` cells (those the campaign has as targets), which must then be empty.

    Raises:
        DataError: an invalid row, an unknown id in a file without inputs, an experiment twice in the file, a
            correction without a reason, a changed planned input, or a row that changes nothing.
    """
    return _parse(data, config, file, True, (), False, existing, spectra)


def _parse(
    data: bytes,
    config: CampaignConfig,
    file: str,
    require_targets: bool,
    existing_ids: Iterable[str],
    allow_extra_categories: bool,
    existing: pd.DataFrame | None,
    spectra: Mapping[str, Any] | None,
) -> ParsedBatch:
    text = _decode(data, file)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise DataError(file, "the file has no rows", "export the batch with a header row")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        raise DataError(
            file, "columns are not separated by commas", "export as comma-separated CSV (not ';' or tab)", row=1
        )

    input_cols = list(config.input_names)
    target_cols = list(config.target_names) if require_targets else []
    optional = [ID, BATCH, STATUS, *TEXT_COLUMNS, *(qualifier_column(t) for t in config.target_names)]
    optional += [actual_column(n) for n in _continuous(config)]
    if require_targets:
        read_off = [t for t in target_cols if t in (PEAK_TARGET, WIDTH_TARGET)] if spectra else []
        required = [ID, *input_cols, *(t for t in target_cols if t not in read_off)]
        optional += read_off  # the spectra give these: their columns may be absent
    else:
        required = input_cols
        optional += list(config.target_names)
    if existing is not None:
        optional.append(REASON)
    if require_targets:
        optional.append(SPECTRUM)
    known = required + optional
    seen: set[str] = set()
    for c, h in enumerate(header):
        if h in seen:
            raise DataError(file, f"column {h!r} appears twice", "delete one of the two columns", row=1, column=h)
        seen.add(h)
        if h not in known:
            raise DataError(file, "unknown column", _nearest(h, known), row=1, column=h or f"#{c + 1}")
    if not body:
        raise DataError(file, "the file has a header but no experiments", "add one row per experiment", row=2)
    old = _existing_rows(existing, header, body)
    if old:  # amendment rows need only their id and the cells they change; new experiments need every column
        has_new = ID not in seen or any(r[header.index(ID)].strip() not in old for r in body if len(r) == len(header))
        required = [ID] + (required if has_new else [])
    for h in required:
        if h not in seen:
            if existing is not None and h in input_cols:
                _refuse_unknown_ids(header, body, old, file)
            raise DataError(file, "required column is missing", f"add a column named {h!r}", row=1, column=h)

    ids = set(existing_ids)
    records, amendments = [], []
    for k, raw in enumerate(body):
        line = k + 2
        if len(raw) != len(header):
            raise DataError(
                file,
                f"the row has {len(raw)} cells but the header has {len(header)}",
                "check for a stray comma or a missing cell (quote text that contains commas)",
                row=line,
            )
        cell = dict(zip(header, (c.strip() for c in raw)))
        rec: dict[str, object] = {}
        if ID in cell or require_targets:
            eid = cell.get(ID, "")
            if not eid:
                raise DataError(file, "experiment id is empty", "give every row a unique id", row=line, column=ID)
            if eid in ids:
                raise DataError(
                    file,
                    "duplicate experiment id" if eid not in old else "the experiment appears twice in this file",
                    "ids must be unique across the campaign; rename the row"
                    if eid not in old
                    else "put all of its late or corrected values in one row",
                    row=line,
                    column=ID,
                    value=eid,
                )
            ids.add(eid)
            _fill_from_spectrum(cell, (spectra or {}).get(eid), config, file, line)
            if eid in old:
                amendments += _amendment(cell, old[eid], config, file, line)
                continue
            if cell.get(REASON):
                raise DataError(
                    file,
                    "a reason is for corrections of experiments already in the campaign",
                    "clear the cell, or check the id",
                    row=line,
                    column=REASON,
                    value=cell[REASON],
                )
            rec[ID] = eid
        else:
            rec[ID] = f"row{line}"
        rec[BATCH] = cell.get(BATCH, "")
        for inp in config.inputs:
            value = cell[inp.name]
            if isinstance(inp, ContinuousInput):
                rec[inp.name] = None if value == "" else _float(value, file, line, inp.name)
            else:
                allowed = inp.choices + (inp.extra if allow_extra_categories else ())
                if value and value not in allowed:
                    raise DataError(
                        file, "unknown category", _nearest(value, allowed), row=line, column=inp.name, value=value
                    )
                rec[inp.name] = value
        _apply_conditions(rec, config, file, line)
        for inp in config.inputs:
            v = rec[inp.name]
            if isinstance(inp, ContinuousInput):
                if v is None:
                    raise DataError(
                        file,
                        "value is missing",
                        f"fill in {inp.name} ({inp.lower}-{inp.upper})",
                        row=line,
                        column=inp.name,
                    )
                if not inp.lower <= v <= inp.upper and not _set_by_condition(inp.name, rec, config):
                    raise DataError(
                        file,
                        f"outside the search space [{inp.lower}, {inp.upper}]",
                        "correct the value or widen the range in the campaign config",
                        row=line,
                        column=inp.name,
                        value=v,
                    )
            elif isinstance(inp, CategoricalInput) and v == "" and not _inactive(inp.name, rec, config):
                raise DataError(file, "value is missing", f"use one of {list(inp.choices)}", row=line, column=inp.name)
        if require_targets:
            _check_constraints(rec, config, file, line)
        for inp in config.inputs:
            if not isinstance(inp, ContinuousInput):
                continue
            rec[planned_column(inp.name)] = math.nan
            a = _actual(cell, inp, file, line)
            if a is not None:
                rec[planned_column(inp.name)], rec[inp.name] = rec[inp.name], a
        status = rec[STATUS] = _status(cell, file, line)
        for t in config.targets:
            rec[t.name], rec[qualifier_column(t.name)] = _target_cell(cell, t, status, file, line)
        for c in TEXT_COLUMNS:
            rec[c] = cell.get(c, "")
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    cols = (
        experiment_columns(config) if require_targets else [c for c in experiment_columns(config) if c in frame.columns]
    )
    return ParsedBatch(frame.reindex(columns=cols), pd.DataFrame(amendments, columns=AMENDMENT_COLUMNS))


def _check_constraints(rec: dict[str, object], config: CampaignConfig, file: str, line: int) -> None:
    """A planned recipe must satisfy the campaign's linear constraints (within ``constraint_tolerance``)."""
    from optimize.constraints import violations

    if not config.constraints:
        return
    for c, amount in violations(config.linear_constraints, rec, config.constraint_tolerance):
        values = ", ".join(f"{name} = {rec[name]:g}" for name, _ in c.coefs)
        raise DataError(
            file,
            f"breaks the constraint {c.text!r} by {amount:.3g} ({values}; tolerance {config.constraint_tolerance:g})",
            "correct the values, or change the campaign's constraints or constraint_tolerance",
            row=line,
            column=c.coefs[0][0],
            value=rec[c.coefs[0][0]],
        )


def _fill_from_spectrum(cell: dict[str, str], spectrum: Any, config: CampaignConfig, file: str, line: int) -> None:
    """Write a spectrum's peak and FWHM into the row's empty target cells (``spectrum``: a
    :class:`~optimize.spectra.Spectrum`, or ``None`` when the row names none)."""
    if spectrum is None:
        if cell.get(SPECTRUM):
            raise DataError(
                file,
                "the spectrum file was not read",
                "ingest with `kiln ingest` from the batch's folder (spectra cannot be sent over HTTP)",
                row=line,
                column=SPECTRUM,
                value=cell[SPECTRUM],
            )
        return
    given = {PEAK_TARGET: spectrum.peak_nm, WIDTH_TARGET: spectrum.fwhm_nm}
    given = {name: v for name, v in given.items() if name in config.target_names}
    if not given:
        raise DataError(
            file,
            f"this campaign has no {PEAK_TARGET} or {WIDTH_TARGET} target to read off a spectrum",
            "remove the spectrum, or add the target to the campaign config",
            row=line,
            column=SPECTRUM,
        )
    for name, value in given.items():
        if cell.get(name):
            raise DataError(
                file,
                f"both a value and a spectrum give {name}",
                f"leave {name} empty: kiln reads it off the spectrum ({value:.4g})",
                row=line,
                column=name,
                value=cell[name],
            )
        cell[name] = repr(round(float(value), 4))


def _existing_rows(existing: pd.DataFrame | None, header: list[str], body: list[list[str]]) -> dict[str, dict]:
    """The current rows (as dicts, by id) of the experiments this file names that ``existing`` holds."""
    if existing is None or ID not in header or existing.empty:
        return {}
    j = header.index(ID)
    named = {r[j].strip() for r in body if len(r) > j}
    hit = existing[existing[ID].isin(named)]
    return {row[ID]: row for row in hit.to_dict("records")}


def _refuse_unknown_ids(header: list[str], body: list[list[str]], old: dict[str, dict], file: str) -> None:
    """In a file without the input columns (amendments only), the first id that names no experiment."""
    j = header.index(ID)
    for k, r in enumerate(body):
        eid = r[j].strip() if len(r) > j else ""
        if eid not in old:
            raise DataError(
                file,
                "unknown experiment id: no experiment of the campaign has it",
                "check the id (an amendment names an experiment already ingested); a new experiment needs its inputs",
                row=k + 2,
                column=ID,
                value=eid,
            )


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            fa, fb = float(a), float(b)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return (math.isnan(fa) and math.isnan(fb)) or abs(fa - fb) <= 1e-9 * max(1.0, abs(fa), abs(fb))
    return a == b


def _amendment(cell: dict[str, str], old: dict, config: CampaignConfig, file: str, line: int) -> list[dict]:
    """The cell changes an amendment row makes to an experiment's current values ``old`` (validated)."""
    changes: list[dict] = []
    base = {"experiment_id": old[ID], "reason": cell.get(REASON, ""), "source": cell.get("source", ""), "row": line}

    def change(column: str, value: object, previous: object, qualifier: str = "", prev_q: str = "") -> None:
        empty = previous is None or (isinstance(previous, float) and math.isnan(previous))
        if not empty and _same(value, previous) and qualifier == prev_q:
            return
        was = "" if empty else f"{prev_q}{previous}"
        kind = "measurement" if empty else "correction"
        changes.append(
            {**base, "column": column, "value": value, "qualifier": qualifier, "previous": was, "kind": kind}
        )

    for inp in config.inputs:
        text = cell.get(inp.name, "")
        if not text:
            continue
        continuous = isinstance(inp, ContinuousInput)
        planned = old.get(planned_column(inp.name), math.nan) if continuous else math.nan
        planned = old[inp.name] if not continuous or math.isnan(planned) else planned
        if not _same(_float(text, file, line, inp.name) if continuous else text, planned):
            raise DataError(
                file,
                f"planned inputs cannot be changed (experiment {old[ID]} was planned with {planned})",
                f"for a new experiment, give it an id of its own; to amend {old[ID]}, leave {inp.name} empty"
                + (f" or record the value really reached in {actual_column(inp.name)}" if continuous else ""),
                row=line,
                column=inp.name,
                value=text,
            )
    for inp in config.inputs:
        a = _actual(cell, inp, file, line) if isinstance(inp, ContinuousInput) else None
        if a is not None:
            reached = old[inp.name] if not math.isnan(old.get(planned_column(inp.name), math.nan)) else None
            change(actual_column(inp.name), a, reached)
    status = _status(cell, file, line)
    if status and status != (old[STATUS] or "ok"):
        change(STATUS, status, old[STATUS] or "ok")
    final = status or old[STATUS]
    for t in config.targets:
        qcol = qualifier_column(t.name)
        v, q = _target_cell(cell, t, "", file, line)
        if not math.isnan(v):
            change(t.name, v, old[t.name], q, old[qcol])
        if final == "failed" and (not math.isnan(v) or not math.isnan(old[t.name])):
            raise DataError(
                file,
                "a failed synthesis has no measured values",
                f"clear {t.name} or change the status to 'ok'",
                row=line,
                column=t.name if not math.isnan(v) else STATUS,
                value=cell.get(t.name) or status,
            )
    if not changes:
        raise DataError(
            file,
            f"nothing new for experiment {old[ID]}: every value given equals the campaign's",
            "remove the row, or give the late or corrected values",
            row=line,
            column=ID,
            value=old[ID],
        )
    fixes = [c for c in changes if c["kind"] == "correction"]
    if fixes and not base["reason"]:
        c = fixes[0]
        raise DataError(
            file,
            f"{c['column']} of {old[ID]} is already {c['previous']}: changing it is a correction and needs a reason",
            "add a 'reason' column saying why (e.g. 'typo in the lab book'), or leave the cell empty",
            row=line,
            column=c["column"],
            value=f"{c['qualifier']}{c['value']}",
        )
    return changes


def _actual(cell: dict[str, str], inp: ContinuousInput, file: str, line: int) -> float | None:
    """The ``<input>_actual`` value of a row (``None`` when empty), checked against the input's range."""
    text = cell.get(actual_column(inp.name), "")
    if not text:
        return None
    a = _float(text, file, line, actual_column(inp.name))
    if not inp.lower <= a <= inp.upper:
        raise DataError(
            file,
            f"outside the search space [{inp.lower}, {inp.upper}]",
            "correct the value or widen the range in the campaign config",
            row=line,
            column=actual_column(inp.name),
            value=a,
        )
    return a


def _status(cell: dict[str, str], file: str, line: int) -> str:
    status = cell.get(STATUS, "")
    if status not in STATUSES:
        raise DataError(
            file,
            "unknown status",
            "write 'failed' for a synthesis that gave no usable product, else leave it empty or 'ok'",
            row=line,
            column=STATUS,
            value=status,
        )
    return status


def _target_cell(cell: dict[str, str], t, status: str, file: str, line: int) -> tuple[float, str]:
    """A target's value (NaN: not measured) and qualifier from a row's cells, validated."""
    qcol = qualifier_column(t.name)
    q = cell.get(qcol, "")
    if q not in QUALIFIERS:
        raise DataError(
            file,
            "unknown qualifier",
            "use '<' (below), '>' (above), '~' (approximate) or leave empty",
            row=line,
            column=qcol,
            value=q,
        )
    value = cell.get(t.name, "")
    if value == "":
        if q:
            raise DataError(
                file,
                "qualifier given without a value",
                f"fill in {t.name} or clear {qcol}",
                row=line,
                column=qcol,
                value=q,
            )
        return math.nan, ""
    if status == "failed":
        raise DataError(
            file,
            "a failed synthesis has no measured values",
            f"clear {t.name} or change the status to 'ok'",
            row=line,
            column=t.name,
            value=value,
        )
    v = _float(value, file, line, t.name)
    lo = -math.inf if t.lower is None else t.lower
    hi = math.inf if t.upper is None else t.upper
    if not lo <= v <= hi:
        raise DataError(
            file,
            f"outside the physical range [{t.lower}, {t.upper}]{' ' + t.unit if t.unit else ''}",
            "check the unit (percent, not a fraction, for %) and the decimal point",
            row=line,
            column=t.name,
            value=value,
        )
    return v, q


def _set_by_condition(name: str, rec: dict[str, object], config: CampaignConfig) -> bool:
    """A condition fixes this input for this row (its value, checked already, may lie outside the range)."""
    return any(name in c.set for c in config.applicable_conditions(rec))


def _inactive(name: str, rec: dict[str, object], config: CampaignConfig) -> bool:
    return any(name in c.inactive for c in config.applicable_conditions(rec))


def _apply_conditions(rec: dict[str, object], config: CampaignConfig, file: str, line: int) -> None:
    """Fill fixed values (``k_ratio`` = 0 without carbonate) and blank inputs that do not apply."""
    for cond in config.applicable_conditions(rec):
        for name, fixed in cond.set.items():
            v = rec[name]
            if v is None:
                rec[name] = fixed
            elif abs(float(v) - fixed) > 1e-9:
                when = ", ".join(f"{k} = {w}" for k, w in cond.when.items())
                raise DataError(
                    file,
                    f"must be {fixed:g} when {when}",
                    f"write {fixed:g} or change {', '.join(cond.when)}",
                    row=line,
                    column=name,
                    value=v,
                )
        for name in cond.inactive:  # categorical by config validation
            rec[name] = ""
