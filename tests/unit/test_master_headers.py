"""Headers and output other programs read: master flats with BUNIT (astropy's CCDData reads them),
GAIN and OFFSET of the inputs' type, keywords shared by every input carried into the master,
and output piped to another program never broken across lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from indical.calib.master import MasterSpec, build_master, write_master
from indical.frame import FrameType
from indical.testing.frames import write_synthetic


def _flats(folder: Path, n: int = 3, **cards) -> list[Path]:
    paths = []
    for i in range(n):
        p = write_synthetic(folder / f"flat_{i}.fits", FrameType.FLAT, level_adu=20000 + 100 * i,
                            seed=i)
        with fits.open(p, mode="update") as hdul:
            for k, v in cards.items():
                hdul[0].header[k] = v(i) if callable(v) else v
        paths.append(p)
    return paths


def test_master_flat_reads_as_ccddata_without_a_unit(tmp_path):
    from astropy.nddata import CCDData
    build = build_master(MasterSpec(_flats(tmp_path)))
    out = write_master(build, tmp_path / "mf.fits")
    ccd = CCDData.read(out)
    assert ccd.unit.physical_type == "dimensionless"
    assert float(np.mean(ccd.data, dtype=np.float64)) == pytest.approx(1.0, abs=1e-6)


def test_gain_and_offset_keep_their_type_and_shared_keywords_are_carried(tmp_path):
    shared = {"GAIN": 139, "OFFSET": 21, "XPIXSZ": 3.76, "YPIXSZ": 3.76, "TELESCOP": "RedCat 51",
              "FOCALLEN": 250.0, "BAYERPAT": "RGGB", "OBSERVAT": "Backyard",
              "SITEELEV": 12.5, "ROWORDER": "TOP-DOWN"}
    differing = {"FOCUSPOS": lambda i: 1000 + i, "AIRMASS": lambda i: 1.0 + 0.1 * i}
    out = write_master(build_master(MasterSpec(_flats(tmp_path, **shared, **differing))),
                       tmp_path / "mf.fits")
    h = fits.getheader(out)
    for key, value in shared.items():
        assert h[key] == value and type(h[key]) is type(value), (key, h.get(key))
    assert "FOCUSPOS" not in h and "AIRMASS" not in h
    assert h["IMAGETYP"] == "Master Flat" and "DATE-OBS" in h


def test_a_float_gain_stays_a_float(tmp_path):
    out = write_master(build_master(MasterSpec(_flats(tmp_path, GAIN=1.5))), tmp_path / "m.fits")
    assert isinstance(fits.getheader(out)["GAIN"], float)


def test_piped_output_is_not_broken_across_lines(tmp_path):
    folder = tmp_path / ("a_rather_long_folder_name_that_goes_on_and_on_" * 2)
    paths = _flats(folder)
    out = folder / "master_flat_with_a_long_name_as_users_write_them_L_2026-03-20.fits"
    indical = Path(sys.executable).with_name("indical")
    run = subprocess.run([str(indical), "master", *map(str, paths), "-o", str(out)],
                         capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert run.returncode == 0, run.stderr
    (line,) = [x for x in run.stdout.splitlines() if x.startswith("wrote")]
    assert str(out) in line and "precal none" in line
