"""Spectra in: peak and FWHM read off a spectrometer's export, stored with its hash; broken spectra refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optimize.campaign import SPECTRA, cell_history, ingest_batch, load_campaign
from optimize.cli import app
from optimize.errors import DataError
from optimize.fileio import sha256
from optimize.spectra import measure_spectrum
from tests.conftest import snapshot

runner = CliRunner()
W = np.arange(400.0, 700.0, 0.5)


def spectrum_csv(intensity: np.ndarray, w: np.ndarray = W) -> bytes:
    return ("wavelength_nm,intensity\n" + "".join(f"{a:.2f},{b:.6g}\n" for a, b in zip(w, intensity))).encode()


def gaussian(center: float, fwhm: float, height: float = 1000.0) -> np.ndarray:
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    return height * np.exp(-0.5 * ((W - center) / sigma) ** 2)


@pytest.mark.parametrize("center, fwhm", [(521.3, 19.0), (630.0, 35.5), (470.2, 12.0)])
def test_a_noisy_gaussian_gives_its_peak_and_width(center, fwhm):
    rng = np.random.default_rng(0)
    got = measure_spectrum(spectrum_csv(gaussian(center, fwhm) + 30 + rng.normal(0, 4, len(W))), "s.csv")
    assert got.peak_nm == pytest.approx(center, abs=0.3)
    assert got.fwhm_nm == pytest.approx(fwhm, rel=0.02)


def test_an_asymmetric_peak_gives_the_width_between_its_half_maximum_crossings():
    left, right = 8.0, 15.0  # standard deviations on either side of 520 nm
    y = np.where(W < 520, np.exp(-0.5 * ((W - 520) / left) ** 2), np.exp(-0.5 * ((W - 520) / right) ** 2)) * 800
    got = measure_spectrum(spectrum_csv(y + 10), "s.csv")
    half = np.sqrt(2 * np.log(2))
    assert got.fwhm_nm == pytest.approx(half * (left + right), rel=0.01)
    assert got.peak_nm == pytest.approx(520, abs=1.5)  # the parabola through the top leans to the wider flank


def test_rows_in_any_order_and_the_hash_of_the_file():
    data = spectrum_csv(gaussian(520, 20)[::-1] + 5, W[::-1])
    got = measure_spectrum(data, "s.csv")
    assert got.peak_nm == pytest.approx(520, abs=0.3) and got.sha256 == sha256(data)


@pytest.mark.parametrize(
    "data, message",
    [
        (spectrum_csv(np.random.default_rng(1).normal(100, 5, len(W))), "no clear peak"),
        (spectrum_csv(np.minimum(gaussian(520, 30), 600.0)), "saturated"),
        (spectrum_csv(gaussian(500, 15) + gaussian(560, 15, 800)), r"two peaks of similar height, at 500.0 and 560.0"),
        (spectrum_csv(gaussian(402, 30)), "does not fall to half its height"),
        (b"nm,counts\n500,1\n", "needs the header wavelength_nm,intensity"),
        (b"wavelength_nm,intensity\n" + b"500,1\n" * 3, "3 points"),
        (b"wavelength_nm,intensity\n500,high\n", "not a number"),
        (spectrum_csv(np.ones(20), np.repeat(W[:10], 2)), "a wavelength appears twice"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
    ids=["noise", "saturated", "two-peaks", "cut-off", "header", "too-few", "text", "duplicate", "binary"],
)
def test_broken_spectra_are_refused_with_a_named_error(data, message):
    with pytest.raises(DataError, match=message) as e:
        measure_spectrum(data, "spectra/S001-1.csv")
    assert str(e.value).startswith("spectra/S001-1.csv")


def test_a_small_second_peak_is_fine():
    got = measure_spectrum(spectrum_csv(gaussian(520, 20) + gaussian(600, 20, 200) + 10), "s.csv")
    assert got.peak_nm == pytest.approx(520, abs=0.3)


HEADER = "experiment_id,batch,temperature_c,k_ratio,carbonate,addition,br_fraction,plqy,fwhm_nm,dispersibility,"


def test_a_batch_names_its_spectra_and_kiln_reads_fwhm_off_them(config, config_path, tmp_path):
    (tmp_path / "spectra").mkdir()
    data = spectrum_csv(gaussian(515.0, 23.4) + 20)
    (tmp_path / "spectra" / "s1.csv").write_bytes(data)
    batch = tmp_path / "batch.csv"
    # no fwhm_nm column: the spectrum gives it
    header = HEADER.replace("fwhm_nm,", "")
    batch.write_text(header + "water_retention,spectrum\nlab-1,L,600,1,K2CO3,internal,1,80,1,0.9,spectra/s1.csv\n")
    added = ingest_batch(config, batch)
    campaign = load_campaign(config)
    row = campaign.experiments.set_index("experiment_id").loc["lab-1"]
    assert row["fwhm_nm"] == pytest.approx(23.4, rel=0.02)
    digest = sha256(data)
    assert (config.data_path / SPECTRA / f"{digest}.csv").read_bytes() == data  # stored by content
    assert (
        dict(added.spectra) == {"lab-1": digest} and f"lab-1: {digest}" in added.path.with_suffix(".yaml").read_text()
    )
    cells = cell_history(campaign, "lab-1")
    assert f"spectrum sha256 {digest[:12]}" in cells[cells["column"] == "fwhm_nm"]["source"].iloc[0]
    # a week later, a seed experiment's spectrum from a folder of spectra named by id: a late FWHM (amendment)
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "he2023-03.csv").write_bytes(spectrum_csv(gaussian(512.5, 25.1) + 20))
    late = tmp_path / "late.csv"
    late.write_text("experiment_id,source\nhe2023-03,spectrometer 2\n")
    res = runner.invoke(
        app,
        [
            "ingest",
            str(late),
            "--spectra",
            str(folder),
            "--no-retrain",
            "--format",
            "json",
            "--config",
            str(config_path),
        ],
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["amended_cells"] == 1
    campaign = load_campaign(config)
    assert campaign.experiments.set_index("experiment_id").at["he2023-03", "fwhm_nm"] == pytest.approx(25.1, rel=0.02)
    # the stored spectrum is the data: changed, the campaign says so
    (config.data_path / SPECTRA / f"{digest}.csv").write_bytes(data + b"800,1\n")
    with pytest.raises(DataError, match="the spectrum of lab-1 .* is changed"):
        load_campaign(config)


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "lab-2,L,600,1,K2CO3,internal,1,80,22,1,0.9,s.csv",
            r"column 'fwhm_nm': both a value and a spectrum give fwhm_nm",
        ),
        ("lab-2,L,600,1,K2CO3,internal,1,80,,1,0.9,missing.csv", r"column 'spectrum': spectrum file not found"),
        ("lab-2,L,600,1,K2CO3,internal,1,80,,1,0.9,flat.csv", r"spectrum of lab-2 .*: no clear peak"),
    ],
    ids=["value-and-spectrum", "missing-file", "no-peak"],
)
def test_a_bad_spectrum_refuses_the_batch_and_nothing_is_written(config, tmp_path, row, message):
    (tmp_path / "s.csv").write_bytes(spectrum_csv(gaussian(520, 20) + 10))
    (tmp_path / "flat.csv").write_bytes(
        spectrum_csv(np.full(len(W), 50.0) + np.random.default_rng(0).normal(0, 1, len(W)))
    )
    batch = tmp_path / "batch.csv"
    batch.write_text(HEADER + f"water_retention,spectrum\n{row}\n")
    before = snapshot(config.data_path)
    with pytest.raises(DataError, match=message):
        ingest_batch(config, batch)
    assert snapshot(config.data_path) == before
