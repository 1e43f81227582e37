"""A colour camera end to end on the in-process simulated observatory: panel flats through a
strongly coloured panel, dark flats, lights of a differently coloured uniform source and their
darks, then `indical master` and `indical calibrate` as users run them. The master flat is
normalised per colour channel; the calibrated lights are flat in every channel and keep their
own colour and their CFA keywords."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from indical.cli import main
from indical.frame import FrameType
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.trained import TrainedStore
from indical.sinks import FitsFolderSink

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"

RIG = """
[site]
latitude = 52.0
longitude = 5.0
[clock]
start = "2026-03-20T15:00:00+00:00"
[camera]
driver = "sim"
width = 192
height = 128
bayer_pattern = "RGGB"
[panel]
driver = "sim"
channel_flux = {flux}
[cover]
driver = "sim"
[optics]
vignetting = 0.3
dust_count = 4
"""


def planes(data):
    """The four positions of the 2x2 cell, by name (RGGB)."""
    return {"R": data[0::2, 0::2], "G1": data[0::2, 1::2], "G2": data[1::2, 0::2],
            "B": data[1::2, 1::2]}


def zone_spread(plane, zones=4):
    """Largest relative deviation of zone medians from the plane's median."""
    h, w = plane.shape
    med = np.median(plane)
    zs = [np.median(plane[i * h // zones:(i + 1) * h // zones, j * w // zones:(j + 1) * w // zones])
          for i in range(zones) for j in range(zones)]
    return max(abs(z / med - 1) for z in zs)


def cli(*args):
    run = CliRunner().invoke(main, [str(a) for a in args])
    assert run.exit_code == 0, run.output
    return run.output


def test_colour_flats_master_and_calibrated_lights(tmp_path):
    frames = tmp_path / "frames"
    # flats and dark flats through a red panel
    with open_rig(parse_rig(RIG.format(flux="[1.0, 0.55, 0.25]"), "flats rig")) as rig:
        result = run_sequence(SEQUENCES / "panel_flats.py", rig, FitsFolderSink(frames),
                              log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"),
                              overrides={"FLATS_PER_FILTER": 8, "DARK_FLATS_PER_EXPOSURE": 5})
    assert result.error is None, result.error
    # lights of a uniform greenish source (another panel, the same camera and optics) and darks
    lights, darks = tmp_path / "lights", tmp_path / "darks"
    with open_rig(parse_rig(RIG.format(flux="[0.5, 1.0, 0.8]"), "lights rig")) as rig:
        rig.cover.close()
        rig.panel.set_brightness(200)
        rig.panel.on()
        light_sink = FitsFolderSink(lights)
        for _ in range(2):
            light_sink.write(rig.camera.expose(0.5, FrameType.LIGHT))
        rig.panel.off()
        dark_sink = FitsFolderSink(darks)
        for _ in range(5):
            dark_sink.write(rig.camera.expose(0.5, FrameType.DARK))
    flats = sorted(frames.rglob("flat_*.fits"))
    darkflats = sorted(frames.rglob("darkflat_*.fits"))
    assert len(flats) == 8 and len(darkflats) == 5
    library = tmp_path / "library.sqlite"
    cli("master", *darkflats, "-o", tmp_path / "mdf.fits")
    cli("master", *flats, "-o", tmp_path / "mflat.fits", "--precal", tmp_path / "mdf.fits")
    cli("master", *sorted(darks.rglob("*.fits")), "-o", tmp_path / "mdark.fits")

    with fits.open(tmp_path / "mflat.fits") as hdul:
        master, header = hdul[0].data.astype(np.float64), hdul[0].header
    assert header["BAYERPAT"] == "RGGB"
    for name, plane in planes(master).items():
        assert plane.mean() == pytest.approx(1.0, abs=1e-6), name

    light_files = sorted(lights.rglob("*.fits"))
    cli("calibrate", *light_files, "-o", tmp_path / "out", "--dark", tmp_path / "mdark.fits",
        "--flat", tmp_path / "mflat.fits", "--library", library)
    for light in light_files:
        out = tmp_path / "out" / f"{light.stem}_cal.fits"
        with fits.open(out) as hdul:
            cal, h = hdul[0].data.astype(np.float64), hdul[0].header
        assert (h["BAYERPAT"], h["XBAYROFF"], h["YBAYROFF"]) == ("RGGB", 0, 0)
        raw = fits.getdata(light).astype(np.float64)
        levels = {}
        for name, plane in planes(cal).items():
            assert zone_spread(plane) < 0.01, name                 # flat within 1 %
            assert zone_spread(planes(raw)[name]) > 0.05, name     # it was not: vignetting
            levels[name] = np.median(plane)
        # the lights keep their own colour (0.5, 1.0, 0.8), not the flats' panel's
        assert levels["R"] / levels["G1"] == pytest.approx(0.5, rel=0.03)
        assert levels["B"] / levels["G2"] == pytest.approx(0.8, rel=0.03)
