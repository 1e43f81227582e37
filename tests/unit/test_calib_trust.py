"""Calibration that is right or refused with the reason: flats get a dark only of their own
exposure (else the bias, or on a CCD the bias plus a dark scaled by exposure), the choice and
why go into the master and the library; panel flats and sky flats are never counted, grouped
or combined together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from indical.calib.autobuild import AutoBuildPolicy, build_group, due_groups
from indical.calib.grouping import GroupingOptions, group_frames
from indical.calib.ingest import ingest_paths
from indical.calib.library import CalibrationLibrary, MasterRecord
from indical.calib.master import MasterError, MasterSpec, build_master
from indical.calib.config import CameraConfig
from indical.calib.precal import PrecalTarget, choose_precal
from indical.cli import main
from indical.fits.keywords import header_to_meta, meta_to_header
from indical.frame import Binning, Frame, FrameType
from indical.sinks import FitsFolderSink, FrameQuery
from indical.fits.io import write_frame
from indical.testing.frames import synthetic_data, synthetic_meta, write_synthetic

CONFIG = CameraConfig(camera="Sim Cam", gain=100.0, offset=10.0, binning=Binning(1, 1),
                      width=64, height=48, temperature_c=-10.0)
FLAT = PrecalTarget(CONFIG, exposure_s=2.0)


def m(id, kind, exposure_s, temperature_c=-10.0, **changes) -> MasterRecord:
    from dataclasses import replace
    base = dict(path=f"/m/{kind.value}_{exposure_s:g}s_{id}.fits", frame_type=kind,
                config=replace(CONFIG, temperature_c=temperature_c), filter=None,
                exposure_s=exposure_s, group_key="k", method="sigma", id=id)
    base.update(changes)
    return MasterRecord(**base)


# -- item 1: the precalibration of flats -------------------------------------------------------
def test_a_dark_of_another_exposure_is_never_subtracted_from_flats():
    """The case seen: 2 s flats got a 60 s master dark although a bias existed."""
    bias, dark60 = m(1, FrameType.BIAS, 0.0), m(2, FrameType.DARK, 60.0)
    choice = choose_precal([bias, dark60], FLAT)
    assert choice.bias is bias and choice.dark is None
    assert "no dark flat or dark of 2 s (within 5 %)" in choice.reason
    assert "the library has 60 s" in choice.reason and "CMOS: bias" in choice.reason
    assert choose_precal([dark60], FLAT) is None       # nothing compatible: refuse, say so


@pytest.mark.parametrize("exposure_s, tol, used", [(2.09, 0.05, True), (2.11, 0.05, False),
                                                   (2.11, 0.06, True), (1.91, 0.05, True)])
def test_the_exposure_tolerance_is_settable(exposure_s, tol, used):
    bias, df = m(1, FrameType.BIAS, 0.0), m(2, FrameType.DARKFLAT, exposure_s)
    choice = choose_precal([bias, df], FLAT, exposure_tol=tol)
    assert (choice.dark is df) is used and (choice.bias is None) is used


def test_dark_flat_before_dark_then_temperature():
    df, dark = m(1, FrameType.DARKFLAT, 2.0, temperature_c=-5.0), m(2, FrameType.DARK, 2.0)
    assert choose_precal([dark, df], FLAT).dark is df
    assert "dark flat of 2 s matches the flats' 2 s" in choose_precal([dark, df], FLAT).reason


def test_ccd_bias_plus_dark_current_scaled_by_exposure(tmp_path):
    bias_img = np.full((48, 64), 500.0, np.float32)
    dark_img = bias_img + np.linspace(0, 600, 64, dtype=np.float32)   # 60 s of dark current
    paths = {}
    for name, img in (("bias", bias_img), ("dark", dark_img)):
        paths[name] = tmp_path / f"{name}.fits"
        fits.writeto(paths[name], img)
    bias = m(1, FrameType.BIAS, 0.0, path=str(paths["bias"]))
    dark = m(2, FrameType.DARK, 60.0, path=str(paths["dark"]))
    choice = choose_precal([bias, dark], FLAT, sensor="ccd")
    assert choice.bias is bias and choice.dark is dark
    assert choice.dark_scale == pytest.approx(2.0 / 60.0)
    assert "CCD: bias plus the 60 s dark's dark current scaled x0.03333" in choice.reason
    np.testing.assert_allclose(choice.image(), bias_img + (dark_img - bias_img) / 30, rtol=1e-6)
    assert choose_precal([bias, dark], FLAT, sensor="cmos").dark is None


def _raw(folder: Path, kind: FrameType, n: int, level: float, **meta) -> Path:
    for i in range(n):
        write_synthetic(folder / f"{kind.value}_{i}.fits", kind, level_adu=level, seed=i, **meta)
    return folder


def test_library_flat_master_says_what_it_subtracted_and_why(tmp_path):
    db = tmp_path / "lib" / "library.sqlite"
    raw = tmp_path / "raw"
    _raw(raw / "bias", FrameType.BIAS, 3, 500.0, exposure_s=0.0)
    _raw(raw / "dark", FrameType.DARK, 3, 2500.0, exposure_s=60.0)
    _raw(raw / "flat", FrameType.FLAT, 3, 20000.0, exposure_s=2.0, panel_brightness=80)
    policy = AutoBuildPolicy(min_frames_for_master=3)
    with CalibrationLibrary(db) as lib:
        lib.ingest([raw])
        built = [build_group(lib, g, policy) for g in due_groups(lib, policy)]
        flat = next(b for b in built if b.frame_type is FrameType.FLAT)
        assert flat.precal.startswith("master bias ")
        assert "no dark flat or dark of 2 s" in flat.precal_reason
        stored = next(x for x in lib.masters() if x.id == flat.id)
        assert stored.precal_reason == flat.precal_reason and stored.flat_source == "PANEL"
        header = fits.getheader(flat.path)
        assert header["PRECAL"].startswith("master bias")
        assert any("no dark flat or dark of 2 s" in str(h) for h in header["HISTORY"])
        # the flat master is right: the 60 s dark would have taken 2000 ADU too many
        data = fits.getdata(flat.path)
        assert float(np.mean(data)) == pytest.approx(1.0, abs=1e-5)
    out = CliRunner().invoke(main, ["library", "--library", str(db), "ls"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "precal: master bias" in out.output and "no dark flat or dark of 2 s" in out.output
    assert "flat panel" in out.output


def test_a_camera_set_to_ccd_gets_bias_plus_scaled_dark(tmp_path):
    db = tmp_path / "lib" / "library.sqlite"
    raw = tmp_path / "raw"
    _raw(raw / "bias", FrameType.BIAS, 3, 500.0, exposure_s=0.0)
    _raw(raw / "dark", FrameType.DARK, 3, 2500.0, exposure_s=60.0)
    _raw(raw / "flat", FrameType.FLAT, 3, 20000.0, exposure_s=2.0)
    r = CliRunner().invoke(main, ["library", "--library", str(db), "sensor", "Sim Cam", "ccd"])
    assert r.exit_code == 0, r.output
    policy = AutoBuildPolicy(min_frames_for_master=3)
    with CalibrationLibrary(db) as lib:
        assert lib.sensor_of("Sim Cam") == "ccd" and lib.sensor_of("Other") == "cmos"
        lib.ingest([raw])
        built = [build_group(lib, g, policy) for g in due_groups(lib, policy)]
        flat = next(b for b in built if b.frame_type is FrameType.FLAT)
        assert " + master dark " in flat.precal and "x0.03333" in flat.precal
        assert "CCD: bias plus the 60 s dark's dark current" in flat.precal_reason


# -- item 2: darks of different exposures --------------------------------------------------------
def test_darks_of_different_exposures_make_no_master(tmp_path):
    """The case seen: 3 x 1 s and 3 x 30 s darks made one master with EXPTIME 15.5."""
    paths = [write_synthetic(tmp_path / f"d1_{i}.fits", FrameType.DARK, level_adu=500, seed=i,
                             exposure_s=1.0) for i in range(3)]
    paths += [write_synthetic(tmp_path / f"d30_{i}.fits", FrameType.DARK, level_adu=520,
                              seed=10 + i, exposure_s=30.0) for i in range(3)]
    with pytest.raises(MasterError, match=r"darks of different exposures can't make one master "
                                          r"\(1 s: d1_0\.fits, d1_1\.fits, d1_2\.fits; 30 s: "
                                          r"d30_0\.fits"):
        build_master(MasterSpec(paths))
    # grouped by exposure they make two masters
    groups, _ = group_frames(ingest_paths(paths).records, GroupingOptions.parse("size,exposure"))
    assert sorted(g.exposure_s for g in groups) == [1.0, 30.0]


# -- item 3: panel and sky flats -----------------------------------------------------------------
def test_every_flat_indical_writes_says_what_lit_it():
    panel = meta_to_header(synthetic_meta(FrameType.FLAT, panel_brightness=90))
    sky = meta_to_header(synthetic_meta(FrameType.FLAT, sun_altitude_deg=-5.0))
    dark = meta_to_header(synthetic_meta(FrameType.DARK))
    assert panel["FLATSRC"] == "PANEL" and sky["FLATSRC"] == "SKY" and "FLATSRC" not in dark


@pytest.mark.parametrize("cards, source", [
    ({"FLATSRC": "SKY"}, "SKY"), ({"FLATSRC": "panel"}, "PANEL"),
    ({"SUNALT": -6.5}, "SKY"), ({"SUN-ALT": -3.0}, "SKY"), ({"PANELBRT": 120}, "PANEL"),
    ({"IMAGETYP": "Twilight Flat"}, "SKY"), ({"IMAGETYP": "Sky Flat"}, "SKY"),
    ({"IMAGETYP": "Dome Flat"}, "PANEL"), ({}, None),
])
def test_the_source_of_other_programs_flats_is_inferred(cards, source):
    header = {"IMAGETYP": "Flat Field", "EXPTIME": 2.0, **cards}
    assert header_to_meta(header).flat_source == source


def test_panel_flats_do_not_count_toward_tonights_sky_flats(tmp_path):
    """The case seen: a twilight run after panel flats took '5 of 15'."""
    sink = FitsFolderSink(tmp_path / "frames")
    for i in range(10):
        write_synthetic(tmp_path / "frames" / "2026-03-20" / f"p{i}.fits", FrameType.FLAT,
                        seed=i, panel_brightness=100, flat_source="PANEL")
    q = FrameQuery(FrameType.FLAT, filter="L")
    assert sink.count(q) == 10
    assert sink.count(FrameQuery(FrameType.FLAT, filter="L", flat_source="PANEL")) == 10
    assert sink.count(FrameQuery(FrameType.FLAT, filter="L", flat_source="SKY")) == 0


def test_panel_and_sky_flats_are_grouped_apart_and_never_combined(tmp_path):
    """The case seen: one 'flat R' master from 10 panel and 5 twilight flats."""
    panel = [write_synthetic(tmp_path / f"p{i}.fits", FrameType.FLAT, seed=i, filter="R",
                             panel_brightness=100) for i in range(4)]
    sky = [write_synthetic(tmp_path / f"s{i}.fits", FrameType.FLAT, seed=20 + i, filter="R",
                           sun_altitude_deg=-5.0 - i) for i in range(3)]
    with pytest.raises(MasterError, match=r"panel and sky flats can't make one master "
                                          r"\(PANEL: p0\.fits.*; SKY: s0\.fits"):
        build_master(MasterSpec(panel + sky))
    groups, _ = group_frames(ingest_paths(panel + sky).records, GroupingOptions.parse("size,filter"))
    assert sorted((g.key.flat_source, len(g.records)) for g in groups) == [("PANEL", 4), ("SKY", 3)]
    assert sorted(g.label().split("_")[2] for g in groups) == ["panel", "sky"]
    db = tmp_path / "lib" / "library.sqlite"
    policy = AutoBuildPolicy(min_frames_for_master=3)
    with CalibrationLibrary(db) as lib:
        lib.ingest(panel + sky)
        assert lib.count(FrameQuery(FrameType.FLAT, flat_source="SKY")) == 3
        built = [build_group(lib, g, policy) for g in due_groups(lib, policy)]
        assert sorted((b.flat_source, b.n_frames) for b in built) == [("PANEL", 4), ("SKY", 3)]
        assert all(fits.getheader(b.path)["FLATSRC"] == b.flat_source for b in built)
    from indical.calib.report.page import write_report
    from indical.calib.status import StatusStore
    with CalibrationLibrary(db) as lib, StatusStore(db) as store:
        page = write_report(lib, store, tmp_path / "report").read_text()
    assert "flat R (panel)" in page and "flat R (sky)" in page


def _panel_and_sky_library(tmp_path: Path) -> Path:
    """A library with master flats R from a panel and from the sky, a sky flat V only, a bias
    for the flats and a dark for 10 s lights."""
    frames = [write_synthetic(tmp_path / f"raw/p{i}.fits", FrameType.FLAT, seed=i, filter="R",
                              panel_brightness=100, level_adu=20000) for i in range(3)]
    frames += [write_synthetic(tmp_path / f"raw/s{f}{i}.fits", FrameType.FLAT, seed=10 + i,
                               filter=f, sun_altitude_deg=-5.0, level_adu=15000)
               for i in range(3) for f in ("R", "V")]
    frames += [write_synthetic(tmp_path / f"raw/b{i}.fits", FrameType.BIAS, seed=30 + i,
                               exposure_s=0.0, level_adu=500) for i in range(3)]
    frames += [write_synthetic(tmp_path / f"raw/d{i}.fits", FrameType.DARK, seed=40 + i,
                               exposure_s=10.0, level_adu=520) for i in range(3)]
    db = tmp_path / "lib" / "library.sqlite"
    policy = AutoBuildPolicy(min_frames_for_master=3)
    with CalibrationLibrary(db) as lib:
        lib.ingest(frames)
        for group in due_groups(lib, policy):
            build_group(lib, group, policy)
        flats = lib.masters(frame_type=FrameType.FLAT)
        assert sorted((m.filter, m.flat_source) for m in flats) == [
            ("R", "PANEL"), ("R", "SKY"), ("V", "SKY")]
    for f in ("R", "V"):
        meta = synthetic_meta(FrameType.LIGHT, exposure_s=10.0).replace(filter=f)
        write_frame(Frame(synthetic_data(3000.0, seed=50), meta), tmp_path / f"lights/{f}.fits")
    return db


def _flat_history(path: Path) -> str:
    """The HISTORY line about the master flat, without spaces (astropy folds long lines over
    several cards and drops the space at the fold)."""
    text = "".join(str(h) for h in fits.getheader(path)["HISTORY"]).replace(" ", "")
    return text[text.find("masterflat"):] if "masterflat" in text else ""


def test_calibrate_never_weighs_panel_against_sky_flats(tmp_path):
    """A light gets panel flats while one matches, else sky flats; the run says when its lights
    were flat-fielded two ways, and --flat-source keeps to one source."""
    db = _panel_and_sky_library(tmp_path)
    lights, out = tmp_path / "lights", tmp_path / "out"
    r = CliRunner().invoke(main, ["calibrate", str(lights), "-o", str(out), "--library", str(db)],
                           terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "panelflats" in _flat_history(out / "R_cal.fits")
    assert "skyflats" in _flat_history(out / "V_cal.fits")
    assert "different sources (1 with panel flats, 1 with sky flats)" in r.output
    assert "--flat-source" in r.output

    r = CliRunner().invoke(main, ["calibrate", str(lights), "-o", str(out), "--library", str(db),
                                  "--flat-source", "sky", "--force"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "skyflats" in _flat_history(out / "R_cal.fits")
    assert "different sources" not in r.output

    r = CliRunner().invoke(main, ["calibrate", str(lights), "-o", str(out), "--library", str(db),
                                  "--flat-source", "panel", "--force"], terminal_width=200)
    assert "missing panel flat for filter V: the light was not flat-fielded" in r.output
    assert "panelflats" in _flat_history(out / "R_cal.fits")
    assert _flat_history(out / "V_cal.fits") == ""


def test_utf8_filter_names_survive_ingest_and_master(tmp_path):
    """UTF-8 'Hα' in a capture program's FILTER read as 'HÎ±', and the master got 'H??'."""
    paths = []
    for i in range(3):
        p = write_synthetic(tmp_path / f"f{i}.fits", FrameType.FLAT, seed=i, filter="Ha")
        data = bytearray(p.read_bytes())
        at = data.index(b"FILTER  = ")
        data[at:at + 80] = (b"FILTER  = '" + "Hα".encode() + b"'").ljust(80)
        p.write_bytes(bytes(data))
        paths.append(p)
    assert [r.meta.filter for r in ingest_paths(paths).records] == ["Hα"] * 3
    from indical.calib.master import write_master
    out = write_master(build_master(MasterSpec(paths)), tmp_path / "m.fits")
    assert fits.getheader(out)["FILTER"] == "Ha"      # FITS headers are ASCII: spelled out
