"""``kiln init`` and ``kiln validate-config``: start a campaign from a template, check one.

A new campaign is a folder::

    DIR/campaign.yaml      a copy of the template config (comments kept) with its own name and paths
    DIR/data/batches/      empty: the lab's experiments go here through ``kiln ingest``
    DIR/mlruns/            its MLflow store

The lab then edits ``campaign.yaml`` (inputs, targets, constraints); ``kiln validate-config`` checks
it together with any data already there, and the first ``kiln suggest`` gives a Sobol design.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimize.campaign import BATCHES, load_campaign
from optimize.config import CampaignConfig, ConfigError, load_config

CONFIG_NAME = "campaign.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def init_campaign(directory: Path, template: Path, name: str | None = None, prior: Path | None = None) -> Path:
    """Create a campaign folder from ``template`` (a campaign YAML); returns the new config's path.

    ``prior``: another campaign's data folder (e.g. the template's own data) whose experiments the
    models learn from too (``prior.data_dir`` in the new YAML, as an absolute path).

    Raises:
        ConfigError: the folder already holds a campaign, the name is invalid, the template is, or
            the template already names a prior.
    """
    directory = Path(directory)
    target = directory / CONFIG_NAME
    if target.exists():
        raise ConfigError(f"{target}: a campaign already exists here; choose another folder or edit this one")
    name = name or directory.resolve().name
    if not _NAME.match(name):
        raise ConfigError(f"{name!r}: a campaign name may use letters, digits, '.', '_' and '-' only; pass --name")
    load_config(template)  # the template itself must be valid
    text = Path(template).read_text(encoding="utf-8")
    for key, value in (("name", name), ("data_dir", "data"), ("tracking_dir", "mlruns")):
        line = f"{key}: {value}"
        text, n = re.subn(rf"(?m)^{key}:.*$", line, text, count=1)
        if n == 0:
            text = f"{line}\n{text}"
    if prior is not None:
        if not any((Path(prior) / BATCHES).glob("[0-9][0-9][0-9]*_*.csv")):
            raise ConfigError(
                f"{prior}: no batch files ({BATCHES}/NNN_name.csv);"
                " pass another campaign's data folder, e.g. datasets/cspbbr3_sio2"
            )
        if re.search(r"(?m)^prior:", text):
            raise ConfigError(
                f"{template}: the template already has a 'prior' section;"
                " edit it in the new campaign.yaml instead of passing --prior"
            )
        folder = Path(prior).resolve()  # written as JSON strings: valid YAML whatever the path holds
        text = text.rstrip("\n") + (
            f"\n\n# Learn from another campaign's experiments too (kiln init --prior).\n"
            f"prior:\n  data_dir: {json.dumps(str(folder))}\n  name: {json.dumps(folder.name)}\n"
        )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data" / BATCHES).mkdir(parents=True, exist_ok=True)
    (directory / "mlruns").mkdir(exist_ok=True)
    target.write_text(text, encoding="utf-8")
    load_config(target)
    return target


@dataclass(frozen=True)
class ConfigReport:
    """What a valid config and its data amount to."""

    config: str
    name: str
    inputs: list[str]
    objectives: list[str]
    outcome_constraints: list[str]
    batches: int
    experiments: int
    measured: dict[str, int]
    failed: int
    pending: int
    prior: str
    tracking_uri: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def validate_campaign(config: CampaignConfig) -> ConfigReport:
    """Check the config and every data file of the campaign (raises ``KilnError`` on the first problem)."""
    campaign = load_campaign(config)
    bounds = []
    for oc in config.outcome_constraints:
        parts = [f">= {oc.min:g}" if oc.min is not None else "", f"<= {oc.max:g}" if oc.max is not None else ""]
        bounds.append(f"{oc.target} {' and '.join(p for p in parts if p)}")
    return ConfigReport(
        str(config.source_path),
        config.name,
        list(config.input_names),
        [
            f"{t.name} ({t.direction}{f' {t.goal:g}' if t.goal is not None else ''}, reference {t.reference:g})"
            for t in config.targets
        ],
        bounds,
        len(campaign.batches),
        len(campaign.experiments),
        {t: int(campaign.experiments[t].notna().sum()) for t in config.target_names},
        int(campaign.failed.sum()),
        len(campaign.pending),
        f"{campaign.prior.name}: {len(campaign.prior.experiments)} experiments in {config.prior_path}"
        if campaign.prior is not None
        else "",
        config.tracking_uri,
    )
