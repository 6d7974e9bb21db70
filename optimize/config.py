"""Campaign configuration: the search space, the objectives and the acquisition settings.

A campaign is described by one YAML file (see ``configs/cspbbr3_sio2.yaml``). It is read with
``yaml.safe_load`` and validated by the frozen pydantic models below; a bad file raises
:class:`ConfigError` naming the file and the offending key. Nothing else in the code base
hard-codes input or target names.
"""

from __future__ import annotations

import difflib
import math
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from optimize.errors import KilnError

_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ConfigError(KilnError):
    """A campaign YAML file is missing, unreadable or invalid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Labelled(_Frozen):
    """``label``: a short column header for terminal tables (the name when empty)."""

    label: str = Field(default="", max_length=12)

    @property
    def header(self) -> str:
        return self.label or self.name  # type: ignore[attr-defined]


class ContinuousInput(_Labelled):
    """A real-valued input bounded by ``[lower, upper]``; ``step`` rounds suggestions for the lab."""

    name: Annotated[str, Field(pattern=_NAME)]
    type: Literal["continuous"] = "continuous"
    lower: float
    upper: float
    step: float | None = Field(default=None, gt=0)
    unit: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _bounds(self) -> ContinuousInput:
        if not self.lower < self.upper:
            raise ValueError(f"input {self.name!r}: lower ({self.lower}) must be below upper ({self.upper})")
        return self

    def snap(self, values):
        """Raw value(s) rounded to ``step`` (anchored at ``lower``) and clipped to the bounds."""
        import numpy as np

        v = np.asarray(values, dtype=float)
        if self.step:
            v = self.lower + np.round((v - self.lower) / self.step) * self.step
        return np.clip(np.round(v, 10), self.lower, self.upper)


class Descriptors(_Frozen):
    """Physical descriptors of a categorical input's categories (one value per name per category).

    Categories listed here but not among ``choices`` are never suggested, but models using
    descriptor features can predict them (``kiln predict``), e.g. an untried carbonate.
    """

    names: tuple[Annotated[str, Field(pattern=_NAME)], ...] = Field(min_length=1)
    values: dict[str, tuple[float, ...]]
    source: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Descriptors:
        for cat, vals in self.values.items():
            if len(vals) != len(self.names):
                raise ValueError(f"values.{cat}: {len(vals)} numbers for {len(self.names)} names {list(self.names)}")
        return self


class CategoricalInput(_Labelled):
    """An input taking one of ``choices`` (at least two, unique)."""

    name: Annotated[str, Field(pattern=_NAME)]
    type: Literal["categorical"] = "categorical"
    choices: tuple[str, ...]
    descriptors: Descriptors | None = None
    description: str = ""

    @field_validator("choices")
    @classmethod
    def _choices(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError(f"choices must be at least two unique names, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _covered(self) -> CategoricalInput:
        if self.descriptors is not None:
            missing = [c for c in self.choices if c not in self.descriptors.values]
            if missing:
                raise ValueError(f"input {self.name!r}: descriptors.values lacks {missing} (every choice needs values)")
        return self

    @property
    def extra(self) -> tuple[str, ...]:
        """Categories with descriptors that are not choices: predictable, never suggested."""
        if self.descriptors is None:
            return ()
        return tuple(c for c in self.descriptors.values if c not in self.choices)


Input = Annotated[ContinuousInput | CategoricalInput, Field(discriminator="type")]


class Condition(_Frozen):
    """When ``when`` holds (categorical name -> value), inputs in ``set`` take fixed values and
    inputs in ``inactive`` do not apply (left empty in data files, ignored by the models)."""

    when: dict[str, str]
    set: dict[str, float] = Field(default_factory=dict)
    inactive: tuple[str, ...] = ()


class Target(_Labelled):
    """A measured outcome. ``direction`` makes it an objective: ``maximize``, ``minimize``, or ``target``
    (as close as possible to ``goal``, e.g. an emission peak at 520 nm). ``reference`` is the worst value
    still worth having (the hypervolume reference point; for a ``target`` objective, the distance from
    ``goal`` to ``reference`` is the largest acceptable miss); ``lower``/``upper`` are physical bounds;
    ``noise_std`` is the measurement's repeatability (models never assume less noise than that)."""

    name: Annotated[str, Field(pattern=_NAME)]
    direction: Literal["maximize", "minimize", "target"]
    reference: float
    goal: float | None = None
    lower: float | None = None
    upper: float | None = None
    noise_std: float | None = Field(default=None, gt=0)
    unit: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _bounds(self) -> Target:
        lo = -float("inf") if self.lower is None else self.lower
        hi = float("inf") if self.upper is None else self.upper
        if not lo < hi:
            raise ValueError(f"target {self.name!r}: lower ({self.lower}) must be below upper ({self.upper})")
        if not lo <= self.reference <= hi:
            raise ValueError(f"target {self.name!r}: reference {self.reference} lies outside [{lo}, {hi}]")
        if self.direction == "target":
            if self.goal is None:
                raise ValueError(
                    f"target {self.name!r}: direction 'target' needs a goal (the value to hit, e.g. goal: 520)"
                )
            if not lo <= self.goal <= hi:
                raise ValueError(f"target {self.name!r}: goal {self.goal} lies outside [{lo}, {hi}]")
            if self.reference == self.goal:
                raise ValueError(
                    f"target {self.name!r}: reference must differ from the goal;"
                    " its distance from the goal is the largest acceptable miss"
                )
        elif self.goal is not None:
            raise ValueError(
                f"target {self.name!r}: goal is only for direction 'target' (got direction {self.direction!r})"
            )
        return self

    def objective(self, values):
        """Target values (numpy array or torch tensor, any shape) -> a quantity to maximize of the same
        shape: the value, its negative (``minimize``) or minus its distance from the goal (``target``)."""
        if self.direction == "target":
            return -abs(values - self.goal)
        return values if self.direction == "maximize" else -values

    @property
    def objective_reference(self) -> float:
        """The reference point in objective units (see :meth:`objective`)."""
        return float(self.objective(self.reference))

    @property
    def short(self) -> str:
        """``max``, ``min`` or ``->520`` for table headers and plot labels."""
        return f"->{self.goal:g}" if self.direction == "target" else self.direction[:3]

    def better(self, values):
        """Index of the best of ``values`` (a non-empty 1-d array) under this objective."""
        import numpy as np

        return int(np.argmax(self.objective(np.asarray(values, dtype=float))))


class Furnace(_Frozen):
    """Recipes of one suggested batch are fired together: they share ``input`` (e.g. the calcination
    temperature), taking at most ``max_distinct`` values per batch. The acquisition chooses the shared
    value(s): the greedy batch is built from each of the ``candidates`` best first-recipe values and
    the batch with the highest joint acquisition value wins."""

    input: Annotated[str, Field(pattern=_NAME)]
    max_distinct: int = Field(default=1, ge=1, le=64)
    candidates: int = Field(default=3, ge=1, le=16)


class OutcomeConstraint(_Frozen):
    """A requirement on a target's value (``min`` and/or ``max``, in its units). Suggestions weigh
    their expected improvement by the posterior probability of meeting it (not a post-filter)."""

    target: Annotated[str, Field(pattern=_NAME)]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> OutcomeConstraint:
        if self.min is None and self.max is None:
            raise ValueError(f"outcome constraint on {self.target!r}: give min, max or both")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"outcome constraint on {self.target!r}: min ({self.min}) must be below max ({self.max})")
        return self


TASK = "task"  # the extra model input that tells a prior campaign's rows from this campaign's


class Prior(_Frozen):
    """Another campaign's experiments with the same inputs and targets (e.g. the paper's rows), learned
    together with this campaign's: every model except ``constant`` gets one more input, ``task`` (this
    campaign or the prior), learns from the data how far the prior carries over, and always predicts
    for this campaign. ``data_dir`` is that campaign's data folder (its ``batches/*.csv`` are read,
    never written), relative to this YAML file unless absolute."""

    data_dir: Path
    name: str = "prior"


class AcquisitionSettings(_Frozen):
    """How candidates are searched. Defaults were measured on the seed campaign (see README)."""

    # portfolio: half of each batch by qLogEHVI, half by random scalarizations (see optimize.explore)
    kind: Literal["portfolio", "qlogehvi", "qlognehvi", "qlognparego"] = "portfolio"
    # the portfolio's exploiting half: qLogEHVI against the believed front of posterior means, or noisy qLogNEHVI
    exploit: Literal["qlogehvi", "qlognehvi"] = "qlogehvi"
    # the portfolio's exploring half scalarizes an upper confidence bound (ucb) or a posterior sample (thompson)
    explore: Literal["ucb", "thompson"] = "ucb"
    explore_beta: float = Field(default=1.0, ge=0, le=10)  # the bound's reach, in posterior standard deviations
    # ucb's doubt about its models (optimize.explore.discrepancy_variance): a short-range discrepancy with this
    # standard deviation, in each target's scale, far from every tried recipe, and this length-scale on the
    # unit-scaled continuous inputs; 0 turns it off (benchmarks/README.md, "Doubt at short range on 500 seeds")
    explore_doubt: float = Field(default=0.5, ge=0, le=5)
    explore_doubt_length: float = Field(default=0.15, gt=0, le=10)
    mc_samples: int = Field(default=128, ge=16, le=4096)
    raw_samples_per_combo: int = Field(default=64, ge=8, le=4096)
    restarts: int = Field(default=6, ge=1, le=64)
    maxiter: int = Field(default=60, ge=5, le=1000)
    duplicate_tolerance: float = Field(default=0.02, ge=0, le=0.5)
    furnace: Furnace | None = None

    @property
    def greedy_kind(self) -> str:
        """The acquisition the sequential greedy picks use: ``exploit`` for the portfolio's half, else ``kind``."""
        return self.exploit if self.kind == "portfolio" else self.kind


ModelCandidate = Literal["gp", "gp-onehot", "gp-descriptors", "gbm", "gbm-descriptors", "constant"]
ExploreModel = Literal["gp", "gp-onehot", "gp-descriptors"]  # models whose uncertainty grows away from the data


class ModelSettings(_Frozen):
    """Which surrogates compete per target and how they are cross-validated and tuned.

    ``gp``: GP with a categorical kernel on category codes; ``gp-onehot``/``gp-descriptors``: GP on
    one-hot or physical-descriptor features; ``gbm``/``gbm-descriptors``: gradient-boosting ensemble
    (one-hot or descriptors), Optuna-tuned; ``constant``: the training mean (a baseline to beat).
    """

    candidates: tuple[ModelCandidate, ...] = ("gp-onehot", "gbm", "constant")
    # The model the acquisition explores with, per target, whichever candidate cross-validation chose to predict
    # and report with (null: the chosen one). Leave-one-out NLPD on 8-30 rows judges how a model interpolates,
    # not where it is unsure: in the virtual-lab loop, letting the winner (a constant, a GBM, descriptors) steer
    # the suggestions gave median 0.74 / worst 0.11 over 10 seeds, exploring with gp-onehot 0.96 / 0.38.
    explore_with: ExploreModel | None = "gp-onehot"
    cv_folds: int = Field(default=5, ge=2, le=50)
    cv_repeats: int = Field(default=2, ge=1, le=20)
    loo_max_rows: int = Field(default=20, ge=0, le=500)
    # K-fold scores folds until this many held-out rows are scored (at least two folds): at 500 rows three of
    # five folds, 300 held-out rows, at 60 % of the cost (candidates closer than the folds' noise may swap).
    cv_scored_rows: int = Field(default=250, ge=2)
    # Up to this many rows every fold refits a GP's hyper-parameters; above, the folds keep those learned on all
    # rows and only condition on their training rows (as Ax's cross_validate does): the score is then a little
    # optimistic, as a GBM's is for its Optuna settings, and a GP costs one fit instead of one per fold.
    cv_refit_rows: int = Field(default=200, ge=0)
    # A GP learns its hyper-parameters on at most this many of its rows (drawn at random, seeded) and then
    # conditions on every row: a fit costs O(rows^3) per L-BFGS step, so 500 rows took 30 s; empty: all rows.
    gp_fit_rows: int | None = Field(default=256, ge=16)
    # The kernel of the GPs on one-hot and descriptor features: rbf, BoTorch's default ARD RBF; process, that plus
    # an ARD RBF on the continuous inputs alone with a learned share of at most half, so what the process conditions
    # do carries to categorical choices not tried there yet. In the virtual-lab loop 414 of 500 runs reached 80 % of
    # the best hypervolume after 32 experiments against 344 (surrogate/process_kernel.py, benchmarks/README.md).
    gp_kernel: Literal["rbf", "process"] = "process"
    tuning_trials: int = Field(default=20, ge=1, le=1000)
    gbm_members: int = Field(default=8, ge=2, le=200)
    importance_repeats: int = Field(default=5, ge=1, le=100)
    # Start GP hyper-parameter fits from the previous data version's models: 4x faster refits at 500 rows,
    # but off by default: in the virtual-lab loop it lowered the hypervolume after 32 experiments in 2 of 6
    # seeds (0.31 -> 0.06, 0.94 -> 0.22; benchmarks/README.md): early fits on few rows keep later ones in
    # their basin.
    warm_start: bool = False
    # After an ingest, keep each target's chosen model (refit on all rows) until its rows have grown by
    # this fraction since the cross-validation that chose it; kiln retrain always compares again.
    reselect_growth: float = Field(default=0.25, ge=0, le=10)
    seed: int = 0
    # Processes that tune, cross-validate and fit in parallel (one torch thread each); empty: the machine's cores.
    workers: int | None = Field(default=None, ge=1, le=256)

    @field_validator("candidates")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"candidates must be a non-empty list without repeats, got {list(v)}")
        return v


class CampaignConfig(_Frozen):
    """One campaign: inputs, conditions, targets and where its data and tracking store live.

    ``data_dir`` and ``tracking_dir`` are relative to the YAML file unless absolute.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    data_dir: Path
    tracking_dir: Path = Path("../mlruns")
    inputs: tuple[Input, ...]
    conditions: tuple[Condition, ...] = ()
    targets: tuple[Target, ...]
    outcome_constraints: tuple[OutcomeConstraint, ...] = ()
    # linear constraints on continuous inputs, e.g. "x_cl + x_br + x_i == 1" (optimize/constraints.py)
    constraints: tuple[str, ...] = ()
    # how far a recorded recipe may miss a constraint (in the inputs' units) before ingest refuses it
    constraint_tolerance: float = Field(default=1e-3, ge=0)
    prior: Prior | None = None
    acquisition: AcquisitionSettings = AcquisitionSettings()
    models: ModelSettings = ModelSettings()
    source_path: Path | None = Field(default=None, exclude=True)

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        names = [i.name for i in self.inputs] + [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names used twice among inputs and targets: {dupes}")
        if not self.targets:
            raise ValueError("at least one target is needed")
        by_name = {i.name: i for i in self.inputs}
        for k, cond in enumerate(self.conditions):
            where = f"conditions[{k}]"
            for name, value in cond.when.items():
                inp = by_name.get(name)
                if not isinstance(inp, CategoricalInput):
                    raise ValueError(f"{where}.when: {name!r} is not a categorical input{_hint(name, by_name)}")
                if value not in inp.choices:
                    raise ValueError(f"{where}.when: {value!r} is not a choice of {name!r} {list(inp.choices)}")
            for name, value in cond.set.items():
                inp = by_name.get(name)
                if not isinstance(inp, ContinuousInput):
                    raise ValueError(f"{where}.set: {name!r} is not a continuous input{_hint(name, by_name)}")
                # a value below the range is the input's "off" value (k_ratio 0 without a carbonate, while a
                # carbonate's dose ranges 0.1-4): recipes with the condition take it, all others the range
                if not (math.isfinite(value) and value <= inp.upper):
                    raise ValueError(
                        f"{where}.set: {name}={value} lies above [{inp.lower}, {inp.upper}]"
                        " (a value below the range is allowed: the input's 'off' value)"
                    )
            for name in cond.inactive:
                if not isinstance(by_name.get(name), CategoricalInput):
                    raise ValueError(
                        f"{where}.inactive: {name!r} is not a categorical input{_hint(name, by_name)}"
                        " (fix a continuous input with 'set' instead)"
                    )
        targets = {t.name: t for t in self.targets}
        for k, oc in enumerate(self.outcome_constraints):
            if oc.target not in targets:
                raise ValueError(
                    f"outcome_constraints[{k}].target: {oc.target!r} is not a target{_hint(oc.target, targets)}"
                )
        furnace = self.acquisition.furnace
        if furnace is not None and not isinstance(by_name.get(furnace.input), ContinuousInput):
            raise ValueError(
                f"acquisition.furnace.input: {furnace.input!r} is not a continuous input{_hint(furnace.input, by_name)}"
            )
        if furnace is not None and any(furnace.input in c.set for c in self.conditions):
            raise ValueError(
                f"acquisition.furnace.input: {furnace.input!r} is fixed by a condition;"
                " share an input that every recipe sets"
            )
        if self.prior is not None and TASK in by_name:
            raise ValueError(
                f"inputs: {TASK!r} is the model input that marks prior rows; rename that input or drop 'prior'"
            )
        self.linear_constraints  # parses and checks them (names, feasibility)
        has_descriptors = any(isinstance(i, CategoricalInput) and i.descriptors for i in self.inputs)
        if any(c.endswith("-descriptors") for c in self.models.candidates) and not has_descriptors:
            raise ValueError(
                "models.candidates: '*-descriptors' models need descriptors on a categorical input;"
                " add inputs[].descriptors or drop those candidates"
            )
        if self.models.explore_with == "gp-descriptors" and not has_descriptors:
            raise ValueError(
                "models.explore_with: gp-descriptors needs descriptors on a categorical input;"
                " add inputs[].descriptors or explore with gp-onehot"
            )
        return self

    # ---- derived views -------------------------------------------------------------------
    @cached_property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @cached_property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)

    @cached_property
    def linear_constraints(self) -> tuple:
        """The ``constraints`` parsed (:class:`~optimize.constraints.LinearConstraint`), checked against the inputs.

        Raises:
            ValueError: a constraint that cannot be read, names an unknown or categorical input, or a set of them
                that no recipe within the inputs' ranges satisfies.
        """
        from optimize.constraints import infeasible, parse_constraint

        by_name = {i.name: i for i in self.inputs}
        parsed = []
        for k, text in enumerate(self.constraints):
            c = parse_constraint(text)
            for name, _ in c.coefs:
                if not isinstance(by_name.get(name), ContinuousInput):
                    kind = "a categorical input" if name in by_name else "not an input"
                    raise ValueError(f"constraints[{k}] {text!r}: {name!r} is {kind}{_hint(name, by_name)}")
            parsed.append(c)
        if parsed:
            named = {n for c in parsed for n, _ in c.coefs}
            bounds = {n: (by_name[n].lower, by_name[n].upper) for n in sorted(named)}
            if infeasible(parsed, bounds):
                ranges = ", ".join(f"{n} in [{lo:g}, {hi:g}]" for n, (lo, hi) in bounds.items())
                raise ValueError(
                    f"constraints: no recipe with {ranges} satisfies {[c.text for c in parsed]}; widen a range or "
                    "relax a constraint"
                )
        return tuple(parsed)

    def input(self, name: str) -> ContinuousInput | CategoricalInput:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(name)

    def _resolve(self, p: Path) -> Path:
        if p.is_absolute() or self.source_path is None:
            return p
        return (self.source_path.parent / p).resolve()

    @property
    def data_path(self) -> Path:
        return self._resolve(self.data_dir)

    @property
    def prior_path(self) -> Path | None:
        """The prior campaign's data folder, resolved, or ``None`` without a prior."""
        return self._resolve(self.prior.data_dir) if self.prior is not None else None

    @property
    def tracking_path(self) -> Path:
        return self._resolve(self.tracking_dir)

    @property
    def tracking_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in ``tracking_dir``."""
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return f"sqlite:///{self.tracking_path / 'mlflow.db'}"

    def applicable_conditions(self, recipe: dict[str, object]) -> list[Condition]:
        """Conditions whose ``when`` clause matches a recipe."""
        return [c for c in self.conditions if all(recipe.get(k) == v for k, v in c.when.items())]


def _hint(name: str, options: dict | list | tuple) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_settings(texts: list[str]) -> dict[str, object]:
    """``["acquisition.kind=qlognehvi", "acquisition.mc_samples=64"]`` -> ``{"acquisition.kind": "qlognehvi",
    "acquisition.mc_samples": 64}``: each value read as YAML (numbers, ``null``, ``[a, b]``)."""
    out: dict[str, object] = {}
    for text in texts:
        name, eq, value = text.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"--set {text}: give SECTION.KEY=VALUE, e.g. --set acquisition.kind=qlognehvi")
        try:
            out[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {text}: the value is not YAML ({e.problem})") from None
    return out


def with_settings(config: CampaignConfig, assignments: dict[str, object], given: str | None = None) -> CampaignConfig:
    """The config with ``SECTION.KEY`` settings of its ``acquisition`` or ``models`` replaced (``kiln benchmark
    --set acquisition.kind=qlognehvi``), validated as if read from YAML.

    Raises:
        ConfigError: naming the config, the assignments (``given``, else ``--set ...``) and what is wrong.
    """
    where = config.source_path or config.name
    given = given or " ".join(f"--set {k}={v}" for k, v in assignments.items())
    sections = {"acquisition": config.acquisition.model_dump(), "models": config.models.model_dump()}
    for name, value in assignments.items():
        section, _, key = name.partition(".")
        if section not in sections or not key:
            raise ConfigError(f"{where}: --set {name}: give acquisition.KEY or models.KEY")
        if key not in sections[section]:
            raise ConfigError(f"{where}: --set {name}: {section} has no {key!r}{_hint(key, sections[section])}")
        sections[section][key] = value
    try:
        return CampaignConfig.model_validate({**config.model_dump(), **sections, "source_path": config.source_path})
    except ValidationError as e:
        error = e.errors()[0]
        raise ConfigError(f"{where}: {given}: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None


def with_models(config: CampaignConfig, candidates: tuple[str, ...] | None, explore_with: str | None) -> CampaignConfig:
    """The config with other model candidates and/or another exploring model (``kiln benchmark --models``,
    ``--explore-with``; ``None``: the config's; ``explore_with="chosen"``: the cross-validation winner), validated
    as if read from YAML."""
    assignments: dict[str, object] = {}
    if candidates is not None:
        assignments["models.candidates"] = list(candidates)
    if explore_with is not None:
        assignments["models.explore_with"] = None if explore_with == "chosen" else explore_with
    given = [f"--models {','.join(candidates)}"] if candidates is not None else []
    given += [f"--explore-with {explore_with}"] if explore_with is not None else []
    return with_settings(config, assignments, " ".join(given))


def load_config(path: str | os.PathLike[str]) -> CampaignConfig:
    """Read and validate a campaign YAML file.

    Raises:
        ConfigError: naming the file and the bad key, e.g. ``targets.1.direction``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; pass --config PATH to a campaign YAML") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (name, data_dir, inputs, targets, ...)")
    try:
        return CampaignConfig.model_validate({**raw, "source_path": path.resolve()})
    except ValidationError as e:
        known = list(CampaignConfig.model_fields)
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith(("function-after", "tagged-union")))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                key = str(err["loc"][-1])
                msg = f"unknown key{_hint(key, known if len(err['loc']) == 1 else [])}"
            lines.append(f"  {loc or '(top level)'}: {msg}")
        raise ConfigError(f"{path}: invalid campaign config:\n" + "\n".join(lines)) from None
