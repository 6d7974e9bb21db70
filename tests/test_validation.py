"""Bad batch files are refused with a message naming file, row, column and fix; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from optimize.campaign import ingest_batch, load_campaign
from optimize.errors import DataError
from tests.conftest import snapshot

HEADER = (
    "experiment_id,batch,temperature_c,k_ratio,carbonate,addition,br_fraction,"
    "plqy,plqy_qualifier,fwhm_nm,dispersibility,water_retention,notes"
)
GOOD = "x-1,b1,650,1,K2CO3,internal,1,80,,23,0.9,0.95,ok"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", r"the file is empty"),
        (HEADER.encode() + b"\n", r"header but no experiments"),
        (HEADER.replace(",", ";").encode() + b"\n" + GOOD.replace(",", ";").encode(), r"not separated by commas"),
        (
            HEADER.replace("temperature_c", "temperature").encode() + b"\n" + GOOD.encode(),
            r"column 'temperature': unknown column.*did you mean 'temperature_c'",
        ),
        (
            HEADER.replace(",plqy,", ",").encode() + b"\n" + GOOD.replace(",80,", ",").encode(),
            r"column 'plqy': required column is missing",
        ),
        (
            (HEADER + "\n" + GOOD.replace(",650,", ',"650,5",')).encode(),
            r"row 2, column 'temperature_c': not a number \(value '650,5'\). Fix: use a decimal point: 650.5",
        ),
        (
            f"{HEADER}\n{GOOD.replace(',650,', ',950,')}".encode(),
            r"row 2, column 'temperature_c': outside the search space \[400.0, 800.0\]",
        ),
        (f"{HEADER}\n{GOOD.replace(',650,', ',nan,')}".encode(), r"column 'temperature_c': not a finite number"),
        (f"{HEADER}\n{GOOD.replace(',0.9,', ',inf,')}".encode(), r"column 'dispersibility': not a finite number"),
        (HEADER.replace(",", "\t").encode() + b"\n" + GOOD.replace(",", "\t").encode(), r"not separated by commas"),
        (
            f"{HEADER}\n{GOOD.replace(',650,1,', ',1,650,')}".encode(),
            r"row 2, column 'temperature_c': outside the search space \[400.0, 800.0\] \(value 1.0\)",
        ),  # swapped columns
        (
            f"{HEADER}\n{GOOD.replace('K2CO3', 'K2C03')}".encode(),
            r"column 'carbonate': unknown category \(value 'K2C03'\). Fix: did you mean 'K2CO3'",
        ),
        (f"{HEADER}\n{GOOD.replace('K2CO3', 'k2co3')}".encode(), r"write 'K2CO3' \(exact spelling\)"),
        (
            f"{HEADER}\n{GOOD.replace(',80,', ',180,')}".encode(),
            r"column 'plqy': outside the physical range \[0.0, 100.0\] %",
        ),
        (f"{HEADER}\n{GOOD.replace(',80,', ',-3,')}".encode(), r"column 'plqy': outside the physical range"),
        (f"{HEADER}\n{GOOD}\n{GOOD}".encode(), r"row 3, column 'experiment_id': duplicate experiment id"),
        (  # an id already in the campaign names that experiment: a new one with it would change its planned inputs
            f"{HEADER}\n{GOOD.replace('x-1', 'he2023-07')}".encode(),
            r"planned inputs cannot be changed .* give it an id of its own",
        ),
        (f"{HEADER}\n{GOOD.replace(',80,,', ',80,<=,')}".encode(), r"column 'plqy_qualifier': unknown qualifier"),
        (f"{HEADER}\n{GOOD.replace(',80,,', ',,<,')}".encode(), r"qualifier given without a value"),
        (
            f"{HEADER}\nx-2,b1,650,1.5,none,,1,80,,23,0.9,0.95,k without carbonate".encode(),
            r"column 'k_ratio': must be 0 when carbonate = none",
        ),
        (  # a carbonate at ratio 0 is no carbonate: its dose starts at 0.1 (0 only without one, as below)
            f"{HEADER}\n{GOOD.replace(',650,1,', ',650,0,')}".encode(),
            r"row 2, column 'k_ratio': outside the search space \[0.1, 4.0\] \(value 0.0\)",
        ),
        (
            f"{HEADER}\nx-2,b1,650,1,K2CO3,,1,80,,23,0.9,0.95,no addition".encode(),
            r"column 'addition': value is missing",
        ),
        (f"{HEADER}\n{GOOD},extra".encode(), r"row 2: the row has 14 cells but the header has 13"),
        (
            HEADER.encode() + b"\n" + GOOD.replace("ok", "caf\xe9").encode("latin-1"),
            r"is not UTF-8.*save the file as 'CSV UTF-8'",
        ),
    ],
)
def test_bad_batch_is_refused_and_nothing_written(config, tmp_path, content, expected):
    bad = tmp_path / "batch.csv"
    bad.write_bytes(content)
    before = snapshot(config.data_path)
    with pytest.raises(DataError, match=expected) as e:
        ingest_batch(config, bad)
    assert str(bad) in str(e.value)
    assert snapshot(config.data_path) == before


def test_good_batch_with_bom_and_blank_addition_for_none(config, tmp_path):
    good = tmp_path / "batch.csv"
    rows = [GOOD, "x-2,b1,650,,none,,1,30,,,0.9,,no carbonate", "x-3,b1,650,0,none,,1,30,,,0.9,,0: the off value"]
    body = "\n".join([HEADER, *rows]) + "\n"
    good.write_bytes(b"\xef\xbb\xbf" + body.encode())
    added = ingest_batch(config, good)
    assert added.rows == 3 and added.path.read_bytes() == good.read_bytes()  # kept as received
    exp = load_campaign(config).experiments.set_index("experiment_id")
    assert exp.loc["x-2", "k_ratio"] == 0 and exp.loc["x-2", "addition"] == "" and exp.loc["x-3", "k_ratio"] == 0
    assert exp.loc["x-1", "plqy"] == 80
    with pytest.raises(DataError, match=r"already ingested as 001_"):
        ingest_batch(config, good)


def test_missing_file(config, tmp_path):
    with pytest.raises(DataError, match="cannot read the file"):
        ingest_batch(config, Path(tmp_path / "missing.csv"))
