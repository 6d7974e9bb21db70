"""A virtual CsPbBr3-SiO2 lab: a simulator calibrated on every trend of He et al. 2023 (the seed paper).

It stands in for the furnace when optimizers are compared (``kiln benchmark``). Each target is a
smooth, physically motivated function of the recipe (temperature ``T`` in C, alkali ratio ``r``,
carbonate, addition, bromide fraction ``x``), fixed so that the paper's numbers come out:

- PLQY: crystallization switches on between 500 and 600 C and large domains / non-emissive phases
  lower it above 650 C, giving <10, <10, 37, 20, 16 % at 400-800 C without carbonate; a carbonate
  multiplies it by a passivation gain peaking at ``r`` = 1 (internal K2CO3 ~2.3x -> 87 %, external
  1.38x -> 51 %); Na2CO3 gains less (agglomeration), Cs2CO3 little and loses to non-emitting
  Cs4PbBr6 as ``r`` grows; mixed halides lose efficiency.
- FWHM: narrowest at 600 C (22.7 nm with internal K2CO3), broad and asymmetric below, broader above;
  mixed halides broaden.
- dispersibility: particles fuse above a temperature that a carbonate lowers (more so above ``r`` = 1);
  external addition agglomerates, Na2CO3 agglomerates badly.
- water retention: pores seal with temperature (0.2 at 400-500 C, 0.8 at 600 C, 1 at 700 C+) and an
  internal carbonate seals them at lower temperature; external addition does not.
- emission peak: red-shifts with temperature (particle growth) and strongly with iodide.

``measure`` adds noise of a typical size (PLQY 3 % absolute, FWHM 0.8 nm, dispersibility 0.08 then
rounded to the 0.25 steps of the documented scale, retention 0.04), reports PLQY below 10 % as
censored (``"<10"``) and, optionally, leaves water retention unmeasured at a given rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _peak(r: float) -> float:
    """0 at r = 0, 1 at r = 1, decaying beyond: r * exp(1 - r)."""
    return r * math.exp(1.0 - r)


# Carbonate-specific constants: (PLQY gain at r=1, seal-temperature drop per unit r, fusing drop, agglomeration)
_CARBONATE = {
    "K2CO3": {"gain": 1.27, "seal": 70.0, "fuse": 10.0, "agglomeration": 1.0},
    "Na2CO3": {"gain": 0.55, "seal": 50.0, "fuse": 10.0, "agglomeration": 0.1},
    "Cs2CO3": {"gain": 0.30, "seal": 40.0, "fuse": 10.0, "agglomeration": 0.85},
}
_EXTERNAL_GAIN = 0.38 / 1.27  # external K2CO3 1:1 gives 51 % where internal gives 87 %


@dataclass(frozen=True)
class VirtualLab:
    """The simulator. ``noise`` scales every noise level (0 = exact); ``missing_water`` is the chance a
    sample is not water-tested; ``censor_plqy`` reports PLQY under 10 % as ``"<10"``; the last two
    fields make it another lab than the paper's (see there)."""

    noise: float = 1.0
    missing_water: float = 0.0
    censor_plqy: bool = True
    quantize_dispersibility: bool = True
    # Another lab than the paper's: its furnace runs this much hotter than the set temperature, and
    # its PLQY set-up reads this fraction of the paper's values (transfer benchmarks).
    furnace_offset_c: float = 0.0
    plqy_scale: float = 1.0

    # ---- the noise-free truth ----------------------------------------------------------------
    def truth(self, recipe: Mapping[str, Any]) -> dict[str, float]:
        """Noise-free target values of a recipe (keys: plqy, fwhm_nm, dispersibility, water_retention, emission_nm)."""
        T = float(recipe["temperature_c"]) + self.furnace_offset_c
        carb = recipe.get("carbonate") or "none"
        r = float(recipe.get("k_ratio") or 0.0) if carb != "none" else 0.0
        internal = (recipe.get("addition") or "internal") == "internal"
        x = float(recipe.get("br_fraction", 1.0))
        c = _CARBONATE.get(carb)

        # PLQY (%)
        flux = min(r, 1.0) if (c and internal) else 0.0
        crystallized = _sig((T - (545.0 - 25.0 * flux)) / 18.0)
        coarsened = 0.40 + 0.60 * _sig((660.0 - T) / 25.0)
        gain = 1.0
        if c:
            g = c["gain"] * (1.0 if internal else _EXTERNAL_GAIN)
            gain = 1.0 + g * _peak(r)
            if carb == "Cs2CO3":
                gain *= 1.0 - 0.3 * min(r / 2.0, 1.0)  # excess Cs -> non-emitting Cs4PbBr6
        halide = 1.0 - 0.35 * (1.0 - x) - 0.25 * 4.0 * x * (1.0 - x)
        plqy = min(40.8 * crystallized * coarsened * gain * halide * self.plqy_scale, 98.0)

        # FWHM (nm)
        d = T - 600.0
        fwhm = 23.5 + (0.0005 if d < 0 else 0.00025) * d * d
        if carb == "K2CO3" and internal:
            fwhm -= 0.8 * min(r, 1.0)
        if carb == "Na2CO3":
            fwhm += 3.0 * min(r, 1.0)
        fwhm += 8.0 * (1.0 - x) + 12.0 * 4.0 * x * (1.0 - x)

        # dispersibility (0-1)
        t_fuse = 650.0 - (c["fuse"] * r + 55.0 * max(r - 1.0, 0.0) if c else 0.0)
        disp = 1.0 - _sig((T - t_fuse) / 15.0)
        if c:
            agglomeration = c["agglomeration"] if internal else 0.55
            disp *= 1.0 - (1.0 - agglomeration) * min(r, 1.0)

        # water retention (fraction of PL kept)
        t_seal = 570.0 - (c["seal"] * min(r, 1.5) if (c and internal) else 0.0)
        water = (0.15 + 0.85 * _sig((T - t_seal) / 25.0)) * (1.0 - 0.15 * (1.0 - x))

        # emission peak (nm)
        emission = 512.0 + 0.02 * (T - 600.0) + 175.0 * (1.0 - x) ** 0.8

        return {
            "plqy": plqy,
            "fwhm_nm": fwhm,
            "dispersibility": disp,
            "water_retention": water,
            "emission_nm": emission,
        }

    # ---- a measurement -----------------------------------------------------------------------
    def measure(self, recipe: Mapping[str, Any], rng: np.random.Generator) -> dict[str, float | str | None]:
        """One noisy measurement: floats, ``"<10"`` for a censored PLQY, ``None`` for not measured."""
        t = self.truth(recipe)
        s = self.noise
        plqy = float(np.clip(t["plqy"] + rng.normal(0, 3.0 * s), 0.0, 100.0))
        disp = float(np.clip(t["dispersibility"] + rng.normal(0, 0.08 * s), 0.0, 1.0))
        if self.quantize_dispersibility:
            disp = round(disp * 4) / 4
        water = float(np.clip(t["water_retention"] + rng.normal(0, 0.04 * s), 0.0, 1.0))
        out: dict[str, float | str | None] = {
            "plqy": "<10" if (self.censor_plqy and plqy < 10.0) else round(plqy, 1),
            "fwhm_nm": round(float(max(t["fwhm_nm"] + rng.normal(0, 0.8 * s), 1.0)), 2),
            "dispersibility": disp,
            "water_retention": None if rng.random() < self.missing_water else round(water, 3),
            "emission_nm": round(float(t["emission_nm"] + rng.normal(0, 1.0 * s)), 1),
        }
        return out

    def spectrum(self, recipe: Mapping[str, Any], rng: np.random.Generator) -> bytes:
        """An emission spectrum CSV (``wavelength_nm,intensity``, 350-800 nm every 0.5 nm) as a spectrometer
        exports it: a Gaussian at the recipe's emission peak with its FWHM, on a small background, with noise
        (``noise`` scales it); its peak and FWHM are what :meth:`truth` says, to within that noise."""
        t = self.truth(recipe)
        w = np.arange(350.0, 800.0 + 1e-9, 0.5)
        sigma = t["fwhm_nm"] / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        height = 1000.0 * max(t["plqy"], 1.0) / 100.0 + 50.0
        signal = height * np.exp(-0.5 * ((w - t["emission_nm"]) / sigma) ** 2) + 20.0
        counts = signal + rng.normal(0.0, 1.0 * self.noise, len(w)) * np.sqrt(signal) * 0.3
        rows = "".join(f"{a:.1f},{b:.2f}\n" for a, b in zip(w, counts))
        return ("wavelength_nm,intensity\n" + rows).encode()


@dataclass(frozen=True)
class MixedHalideLab(VirtualLab):
    """The virtual lab for CsPb(Cl_a Br_b I_c)3 with ``x_cl + x_br + x_i = 1`` (inputs ``x_cl``, ``x_br``, ``x_i``
    instead of ``br_fraction``): the CsPbBr3 lab's temperature, carbonate and addition effects, times halide terms.

    - emission: the band gap mixes linearly in energy with a small bowing (CsPbCl3 410 nm, CsPbBr3 512 nm, CsPbI3
      690 nm), red-shifted by particle growth with temperature as in the bromide lab;
    - PLQY: chloride quenches (x 0.45 for pure Cl), iodide less (x 0.65), and mixing loses to phase segregation;
    - FWHM: a constant width in energy (the bromide width at 512 nm scales with the wavelength squared), broadened
      by mixing;
    - water retention: iodide-rich crystals degrade (x 0.85 for pure I).
    """

    def truth(self, recipe: Mapping[str, Any]) -> dict[str, float]:
        a, b, c = (float(recipe.get(k) or 0.0) for k in ("x_cl", "x_br", "x_i"))
        total = a + b + c
        a, b, c = (a / total, b / total, c / total) if total > 0 else (0.0, 1.0, 0.0)
        base = super().truth({**recipe, "br_fraction": 1.0})
        mixing = a * b + b * c + 1.5 * a * c
        gap = 3.02 * a + 2.42 * b + 1.80 * c - 0.3 * (a * b + b * c + a * c)
        T = float(recipe["temperature_c"]) + self.furnace_offset_c
        emission = 1239.84 / gap + 0.02 * (T - 600.0)
        return {
            "plqy": base["plqy"] * max(1.0 - 0.55 * a - 0.35 * c - 1.2 * mixing, 0.05),
            "fwhm_nm": base["fwhm_nm"] * (emission / 512.0) ** 2 + 14.0 * mixing,
            "dispersibility": base["dispersibility"],
            "water_retention": base["water_retention"] * (1.0 - 0.15 * c),
            "emission_nm": emission,
        }


_DEFAULT = VirtualLab()
_RNG = {"rng": np.random.default_rng(0)}


def measure(recipe: Mapping[str, Any]) -> dict[str, float | str | None]:
    """Oracle-file interface (``kiln benchmark --oracle optimize/virtual_lab.py``): one noisy measurement.

    Uses a module-level generator seeded at 0; the benchmark reseeds it per run through
    :func:`reseed`, so results are reproducible.
    """
    return _DEFAULT.measure(recipe, _RNG["rng"])


def truth(recipe: Mapping[str, Any]) -> dict[str, float]:
    """Oracle-file interface: the noise-free values (used by the benchmark for scoring)."""
    return _DEFAULT.truth(recipe)


def reseed(seed: int) -> None:
    """Reset the generator behind :func:`measure` (called by the benchmark before each run)."""
    _RNG["rng"] = np.random.default_rng(seed)
