"""Linear constraints on continuous inputs: ``x_cl + x_br + x_i == 1``, ``k_ratio - 2 * x_i <= 1``.

A campaign YAML lists them under ``constraints:`` as strings over input names (``==``, ``<=``, ``>=``; numbers, ``+``,
``-`` and ``*``; names on either side). :func:`parse_constraint` turns one into a :class:`LinearConstraint`
(``sum coefs[name] * x[name]  op  rhs``, raw units), which the config validates at load (unknown or categorical
names, a set no recipe in the box satisfies). :class:`EncodedConstraints` applies them where recipes are made
(encoded ``n x d`` tensors, continuous features scaled to ``[0, 1]``):

- each equality solves for one of its inputs (its *dependent*, the last one not taken by another equality), so
  every candidate kiln builds satisfies it exactly: the search moves only the other inputs, and
  :meth:`EncodedConstraints.repair` sets the dependents;
- inequalities, and dependents pushed outside their range, make a candidate infeasible
  (:meth:`EncodedConstraints.feasible`): it is dropped from raw samples and refused as a local-search move.

Recorded rows are checked in raw units within ``tolerance`` (:func:`violations`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from torch import Tensor

_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_TOKEN = re.compile(rf"\s*(?:(?P<num>{_NUMBER})|(?P<name>[A-Za-z_]\w*)|(?P<op>==|<=|>=|[-+*]))")
OPS = ("==", "<=", ">=")


@dataclass(frozen=True)
class LinearConstraint:
    """``sum(coefs[name] * x[name]) op rhs`` in the inputs' raw units; ``text`` as written."""

    coefs: tuple[tuple[str, float], ...]
    op: str
    rhs: float
    text: str

    def lhs(self, values: Mapping[str, float]) -> float:
        return sum(c * float(values[name]) for name, c in self.coefs)

    def residual(self, values: Mapping[str, float]) -> float:
        """How far a recipe is from satisfying it (0 when it does): ``|lhs - rhs|`` for ``==``, the excess else."""
        d = self.lhs(values) - self.rhs
        return abs(d) if self.op == "==" else max(d, 0.0) if self.op == "<=" else max(-d, 0.0)


def parse_constraint(text: str) -> LinearConstraint:
    """Parse ``"a * x + b * y - c <= d"`` (names and numbers on either side of one ``==``, ``<=`` or ``>=``).

    Raises:
        ValueError: not a linear (in)equality of that form, saying where.
    """
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"{text!r}: cannot read {text[pos:].strip()!r} (use names, numbers, +, -, *, ==, <=, >=)")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    ops = [i for i, (k, v) in enumerate(tokens) if k == "op" and v in OPS]
    if len(ops) != 1:
        raise ValueError(f"{text!r}: needs exactly one of ==, <=, >=")
    left, op, right = tokens[: ops[0]], tokens[ops[0]][1], tokens[ops[0] + 1 :]
    coefs: dict[str, float] = {}
    constant = 0.0
    for side, sign in ((left, 1.0), (right, -1.0)):
        for coef, name in _terms(side, text):
            if name is None:
                constant += sign * coef
            else:
                coefs[name] = coefs.get(name, 0.0) + sign * coef
    coefs = {k: v for k, v in coefs.items() if v != 0.0}
    if not coefs:
        raise ValueError(f"{text!r}: names no input")
    return LinearConstraint(tuple(coefs.items()), op, -constant, text)


def _terms(tokens: list[tuple[str, str]], text: str) -> list[tuple[float, str | None]]:
    """``[(coef, name or None for a number)]`` of one side: terms ``[+-] [num *] name`` or ``[+-] num``."""
    out, i = [], 0
    if not tokens:
        raise ValueError(f"{text!r}: one side is empty")
    while i < len(tokens):
        sign = 1.0
        while i < len(tokens) and tokens[i] in (("op", "+"), ("op", "-")):
            sign *= -1.0 if tokens[i][1] == "-" else 1.0
            i += 1
        if i >= len(tokens):
            raise ValueError(f"{text!r}: ends with a sign")
        kind, value = tokens[i]
        if kind == "num" and i + 1 < len(tokens) and tokens[i + 1] == ("op", "*"):
            if i + 2 >= len(tokens) or tokens[i + 2][0] != "name":
                raise ValueError(f"{text!r}: '*' must be followed by an input name")
            out.append((sign * float(value), tokens[i + 2][1]))
            i += 3
        elif kind == "num":
            out.append((sign * float(value), None))
            i += 1
        elif kind == "name":
            if i + 1 < len(tokens) and tokens[i + 1] == ("op", "*"):
                raise ValueError(f"{text!r}: write the number first ('2 * x', not 'x * 2')")
            out.append((sign, value))
            i += 1
        else:
            raise ValueError(f"{text!r}: unexpected {value!r}")
        if i < len(tokens) and tokens[i] not in (("op", "+"), ("op", "-")):
            raise ValueError(f"{text!r}: expected + or - before {tokens[i][1]!r}")
    return out


def infeasible(constraints: list[LinearConstraint], bounds: Mapping[str, tuple[float, float]]) -> bool:
    """No point of the box ``bounds`` (name -> (lower, upper)) satisfies every constraint (``scipy`` linprog)."""
    from scipy.optimize import linprog

    names = list(bounds)
    A_ub, b_ub, A_eq, b_eq = [], [], [], []
    for c in constraints:
        row = [dict(c.coefs).get(n, 0.0) for n in names]
        if c.op == "==":
            A_eq.append(row), b_eq.append(c.rhs)
        elif c.op == "<=":
            A_ub.append(row), b_ub.append(c.rhs)
        else:
            A_ub.append([-a for a in row]), b_ub.append(-c.rhs)
    res = linprog(
        [0.0] * len(names),
        A_ub=A_ub or None,
        b_ub=b_ub or None,
        A_eq=A_eq or None,
        b_eq=b_eq or None,
        bounds=[bounds[n] for n in names],
        method="highs",
    )
    return res.status == 2


def violations(constraints, recipe: Mapping[str, float], tolerance: float) -> list[tuple[LinearConstraint, float]]:
    """The constraints a recipe (raw units) breaks by more than ``tolerance``, with the amount."""
    out = []
    for c in constraints:
        r = c.residual(recipe)
        if r > tolerance:
            out.append((c, r))
    return out


def dependents(constraints: tuple[LinearConstraint, ...]) -> dict[int, str]:
    """Equality index -> the input it solves for: its last input that no earlier equality solves for.

    Raises:
        ValueError: an equality whose inputs are all solved for by earlier ones (redundant or conflicting).
    """
    out: dict[int, str] = {}
    for k, c in enumerate(constraints):
        if c.op == "==":
            options = [name for name, _ in c.coefs if name not in out.values()]
            if not options:
                raise ValueError(f"{c.text!r}: every input it names is solved for by another equality")
            out[k] = options[-1]
    return out


def solve_dependents(constraints: tuple[LinearConstraint, ...], recipe: Mapping[str, object]) -> dict[str, object]:
    """``recipe`` (raw units) with each equality's dependent input solved from the others, in order, and rounded to
    12 decimals (so that values snapped to their steps print as such); other entries as they were."""
    out = dict(recipe)
    solved = dependents(constraints)
    for k, name in solved.items():
        c = constraints[k]
        coef = dict(c.coefs)[name]
        out[name] = (c.rhs - sum(a * float(out[n]) for n, a in c.coefs if n != name)) / coef
    return {**out, **{name: round(out[name], 12) for name in solved.values()}}


class EncodedConstraints:
    """The constraints in the encoded space of an :class:`~surrogate.encoding.Encoder` (see the module docstring).

    ``x_raw = lower + u * (upper - lower)``, so ``sum a x <= b`` becomes ``sum a (upper - lower) u <= b - sum a lower``.
    """

    def __init__(self, constraints: tuple[LinearConstraint, ...], encoder, tolerance: float = 1e-9) -> None:
        import torch

        self.constraints, self.tolerance = constraints, tolerance
        names = encoder.names
        rows, rhs, ops = [], [], []
        for c in constraints:
            row = torch.zeros(len(names), dtype=torch.double)
            r = c.rhs
            for name, a in c.coefs:
                f = encoder.features[names.index(name)]
                row[names.index(name)] = a * (f.upper - f.lower)
                r -= a * f.lower
            rows.append(row), rhs.append(r), ops.append(c.op)
        self.A = torch.stack(rows) if rows else torch.zeros(0, len(names), dtype=torch.double)
        self.b = torch.tensor(rhs, dtype=torch.double)
        self.ops = ops
        solved = dependents(constraints)
        self.equalities = list(solved)  # constraint indices of the equalities, in order
        self.dependent = [names.index(name) for name in solved.values()]  # the feature each solves for

    def __bool__(self) -> bool:
        return len(self.ops) > 0

    def repair(self, X: Tensor) -> Tensor:
        """``X`` (``n x d``) with each equality's dependent feature solved from the others (in order)."""
        if not self.equalities:
            return X
        X = X.clone()
        for k, j in zip(self.equalities, self.dependent):
            others = self.A[k].clone()
            others[j] = 0.0
            X[:, j] = (self.b[k] - X @ others) / self.A[k, j]
        return X

    def feasible(self, X: Tensor) -> Tensor:
        """``n`` booleans: every inequality holds and every dependent lies in ``[0, 1]`` (within the tolerance)."""
        import torch

        ok = torch.ones(len(X), dtype=torch.bool)
        if not self.ops:
            return ok
        lhs = X @ self.A.T - self.b  # n x k
        for k, op in enumerate(self.ops):
            if op == "==":
                ok &= lhs[:, k].abs() <= 1e-6
            elif op == "<=":
                ok &= lhs[:, k] <= self.tolerance
            else:
                ok &= lhs[:, k] >= -self.tolerance
        for j in self.dependent:
            ok &= (X[:, j] >= -self.tolerance) & (X[:, j] <= 1 + self.tolerance)
        return ok


def eliminated(
    constraints: tuple[LinearConstraint, ...], bounds: Mapping[str, tuple[float, float]]
) -> tuple[dict[str, tuple[dict[str, float], float]], list[LinearConstraint]]:
    """The equalities turned into derived inputs, for tools without equality constraints (Ax):
    ``({dependent: (coefs over the other inputs, constant)}, inequalities)``, where each dependent equals
    ``constant + sum(coef * x)``; the inequalities are the original ones with the dependents substituted plus each
    dependent's range (``bounds``: name -> (lower, upper)) written over the other inputs."""
    derived: dict[str, tuple[dict[str, float], float]] = {}

    def substitute(coefs: Mapping[str, float], constant: float) -> tuple[dict[str, float], float]:
        out: dict[str, float] = {}
        for name, a in coefs.items():
            if name in derived:
                sub, c0 = derived[name]
                constant += a * c0
                for n, b in sub.items():
                    out[n] = out.get(n, 0.0) + a * b
            else:
                out[name] = out.get(name, 0.0) + a
        return {k: v for k, v in out.items() if abs(v) > 1e-12}, constant

    for k, name in dependents(constraints).items():
        c = constraints[k]
        a = dict(c.coefs)[name]
        rest = {n: -b / a for n, b in c.coefs if n != name}
        derived[name] = substitute(rest, c.rhs / a)
    inequalities = []
    for c in constraints:
        if c.op == "==":
            continue
        coefs, constant = substitute(dict(c.coefs), 0.0)
        inequalities.append(LinearConstraint(tuple(coefs.items()), c.op, c.rhs - constant, c.text))
    for name, (coefs, constant) in derived.items():
        lo, hi = bounds[name]
        text = f"{name} in [{lo:g}, {hi:g}]"
        inequalities.append(LinearConstraint(tuple(coefs.items()), "<=", hi - constant, text))
        inequalities.append(LinearConstraint(tuple(coefs.items()), ">=", lo - constant, text))
    return derived, inequalities
