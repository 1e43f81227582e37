"""Calibrating light files against a real library: outputs, status, recalibration, bad input."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from astropy.io import fits

from calib_fixtures import T0, add_master, standard_library, write_light
from indical.calib.calibrate import CalibrateOptions, calibrate_paths, light_paths
from indical.calib.library import CalibrationLibrary
from indical.calib.status import Status, StatusStore
from indical.frame import FrameType


@pytest.fixture
def setup(tmp_path, library_target):
    """The standard library, on SQLite and on PostgreSQL."""
    lib, scene, masters = standard_library(tmp_path / "lib", target=library_target)
    store = StatusStore(lib.db_path)
    yield tmp_path, lib, store, scene, masters
    store.close()
    lib.close()


def test_light_calibrated_with_the_right_masters(setup):
    tmp, lib, store, scene, masters = setup
    rng = np.random.default_rng(2)
    light = write_light(tmp / "night", "light_L_0001.fits", scene, rng)
    raw_before = light.read_bytes()
    summary = calibrate_paths(lib, store, [tmp / "night"], CalibrateOptions())
    (o,) = summary.outcomes
    assert o.status is Status.CALIBRATED, o.message
    assert light.read_bytes() == raw_before, "the light was changed"
    assert o.output == tmp / "night" / "calibrated" / "light_L_0001_cal.fits"
    with fits.open(o.output) as hdul:
        data, header = hdul[0].data, hdul[0].header
    assert data.dtype == np.dtype(">f4") and "BZERO" not in header
    history = "\n".join(header["HISTORY"])
    assert "indical: subtracted master dark (made " in history
    assert "  dark_30s.fits" in history
    assert "indical: divided by master flat (made " in history and "flat_L.fits" in history
    assert header["CALDARK"] == "dark_30s.fits" and header["CALFLAT"] == "flat_L.fits"
    assert header["IMAGETYP"] == "Light Frame" and header["GAIN"] == 100
    pulls = (data - scene.sky * np.mean(scene.flat)) / (
        scene.expected_noise(30.0) * np.mean(scene.flat))
    assert abs(pulls.mean()) < 0.1 and 0.85 < pulls.std() < 1.15
    st = store.get(str(light.resolve()))
    assert st.status is Status.CALIBRATED and st.output == str(o.output)
    assert {(m.kind, m.id) for m in st.masters} == {("dark", masters["dark"].id),
                                                   ("flat", masters["flat"].id)}
    assert st.night == "2026-03-20" and st.frame_id is not None
    assert lib.frame_by_path(light) is not None


def test_already_calibrated_is_skipped_and_redone_after_supersession(setup):
    tmp, lib, store, scene, masters = setup
    light = write_light(tmp / "n", "l.fits", scene, np.random.default_rng(3))
    calibrate_paths(lib, store, [light], CalibrateOptions())
    again = calibrate_paths(lib, store, [light], CalibrateOptions())
    assert again.outcomes == [] and again.already == [light.resolve()]
    # the output folder's files are not taken for lights when the folder is given
    assert light_paths([tmp / "n"]) == [light]

    new_dark = add_master(lib, FrameType.DARK, scene.bias + scene.dark_rate * 30.0,
                          name="dark_new.fits", exposure_s=30.0,
                          created=masters["dark"].created_at + timedelta(hours=1))
    st = store.get(str(light.resolve()))
    assert st.needs_recal, "superseding the used dark must mark the light"
    assert [s.path for s in store.to_redo()] == [str(light.resolve())]
    redo = calibrate_paths(lib, store, [light], CalibrateOptions())
    assert redo.outcomes[0].status is Status.CALIBRATED
    assert "dark_new.fits" in fits.getheader(redo.outcomes[0].output)["CALDARK"]
    st = store.get(str(light.resolve()))
    assert not st.needs_recal and {m.id for m in st.masters} >= {new_dark.id}


def test_no_masters_says_which(setup):
    tmp, lib, store, scene, _ = setup
    light = write_light(tmp, "ha.fits", scene, np.random.default_rng(4), exposure_s=60.0,
                        filter="Ha")
    (o,) = calibrate_paths(lib, store, [light], CalibrateOptions()).outcomes
    assert o.status is Status.NO_MASTERS
    assert o.missing == ("dark 60 s (-10.0 C)", "flat for filter Ha")
    assert not (tmp / "calibrated").exists()
    assert store.get(str(light.resolve())).missing == o.missing


def test_missing_flat_calibrates_with_a_warning(setup):
    tmp, lib, store, scene, _ = setup
    light = write_light(tmp, "b.fits", scene, np.random.default_rng(4), filter="B")
    (o,) = calibrate_paths(lib, store, [light], CalibrateOptions()).outcomes
    assert o.status is Status.CALIBRATED
    assert any(w.startswith("missing flat for filter B") for w in o.warnings)
    assert "missing flat" in "\n".join(fits.getheader(o.output)["HISTORY"])


def test_bad_inputs_each_get_a_status(setup):
    tmp, lib, store, scene, _ = setup
    rng = np.random.default_rng(5)
    (tmp / "bad").mkdir()
    broken = tmp / "bad" / "broken.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    headerless = tmp / "bad" / "noheader.fits"
    fits.writeto(headerless, np.zeros((60, 80), np.uint16))
    outcomes = {o.path.name: o for o in
                calibrate_paths(lib, store, [broken, headerless], CalibrateOptions()).outcomes}
    assert outcomes["broken.fits"].status is Status.FAILED
    assert "not a readable FITS file" in outcomes["broken.fits"].message
    assert outcomes["noheader.fits"].status is Status.FAILED
    assert outcomes["noheader.fits"].message.startswith("no usable header: unknown frame type")
    assert "--assume-light" in outcomes["noheader.fits"].message
    assert store.get(str(headerless.resolve())).status is Status.FAILED
    (assumed,) = calibrate_paths(lib, store, [headerless],
                                 CalibrateOptions(assume_light=True)).outcomes
    # a light now, but one with no exposure time can't be matched to a dark: refused, saying so
    assert assumed.status is Status.FAILED
    assert assumed.message.startswith("no exposure time (EXPTIME or EXPOSURE)")

    # a calibrated output given back as a light is refused, not calibrated twice
    good = write_light(tmp, "g.fits", scene, rng)
    (first,) = calibrate_paths(lib, store, [good], CalibrateOptions()).outcomes
    (twice,) = calibrate_paths(lib, store, [first.output], CalibrateOptions()).outcomes
    assert twice.status is None and "already a calibrated frame" in twice.message


def test_master_of_wrong_size_and_flat_of_zeros(tmp_path):
    lib, scene, masters = standard_library(tmp_path / "lib")
    store = StatusStore(lib.db_path)
    rng = np.random.default_rng(6)
    now = masters["dark"].created_at + timedelta(days=1)
    # the library says 80x60 but the file holds 40x30 (a master replaced by hand)
    add_master(lib, FrameType.DARK, np.zeros((30, 40)), name="dark_small.fits", exposure_s=30.0,
               created=now, width=80, height=60)
    light = write_light(tmp_path, "l.fits", scene, rng)
    (o,) = calibrate_paths(lib, store, [light], CalibrateOptions()).outcomes
    assert o.status is Status.FAILED
    assert o.message == ("master dark is 40x30 pixels but the light is 80x60: it belongs to "
                         "another camera, binning or region")
    add_master(lib, FrameType.DARK, scene.bias + scene.dark_rate * 30, name="dark_ok.fits",
               exposure_s=30.0, created=now + timedelta(hours=1))
    add_master(lib, FrameType.FLAT, np.zeros((60, 80)), name="flat_zero.fits", filter="L",
               created=now, temperature_c=None)
    (o,) = calibrate_paths(lib, store, [light], CalibrateOptions()).outcomes
    assert o.status is Status.FAILED and "flat has no positive level" in o.message
    store.close()
    lib.close()


def test_ccd_path_and_integer_output(tmp_path):
    lib, scene, masters = standard_library(tmp_path / "lib")
    store = StatusStore(lib.db_path)
    add_master(lib, FrameType.BIAS, scene.bias, name="bias.fits",
               created=masters["dark"].created_at)
    add_master(lib, FrameType.DARK, scene.bias + scene.dark_rate * 300, name="dark_300.fits",
               exposure_s=300.0, created=masters["dark"].created_at)
    light = write_light(tmp_path, "ccd.fits", scene, np.random.default_rng(7), exposure_s=240.0)
    opts = CalibrateOptions(ccd=True, out_dir=tmp_path / "out")
    (o,) = calibrate_paths(lib, store, [light], opts).outcomes
    assert o.status is Status.CALIBRATED, o.message
    data = fits.getdata(o.output)
    med = np.mean(scene.flat)
    pulls = (data - scene.sky * med) / (scene.expected_noise(240.0) * med)
    assert abs(pulls.mean()) < 0.1 and 0.85 < pulls.std() < 1.15
    history = "\n".join(fits.getheader(o.output)["HISTORY"])
    assert "  dark_300.fits" in history and "scaled x0.8" in history

    (o2,) = calibrate_paths(lib, store, [light], CalibrateOptions(
        ccd=True, out_dir=tmp_path / "int", bit_depth_output=True, bit_depth=12)).outcomes
    ints = fits.getdata(o2.output)
    assert ints.dtype.kind in "ui" and ints.max() <= 4095 and ints.min() >= 0
    assert np.abs(ints.astype(float) - np.clip(data, 0, 4095)).max() <= 0.5 + 1e-3
    store.close()
    lib.close()


def test_bad_pixel_map_master_flags_and_corrects(tmp_path, library_target):
    from click.testing import CliRunner

    from indical.calib.flags import PixelFlag
    from indical.cli import main
    lib, scene, masters = standard_library(tmp_path / "lib", target=library_target)
    lib.close()
    db = str(library_target)
    run = CliRunner().invoke(main, ["bpm", "--library", db])
    assert run.exit_code == 0, run.output
    assert run.output.count("built bpm_") == 2   # gain 100 and the gain 200 decoy
    lib = CalibrationLibrary(db)
    store = StatusStore(lib.db_path)
    (bpm,) = [m for m in store.bad_pixel_maps() if not m.superseded and m.config.gain == 100]
    assert fits.getdata(bpm.path)[10, 10] & PixelFlag.HOT, "the synthetic dark's hot pixel"
    assert fits.getheader(bpm.path)["FLAGBIT3"] == "dead pixel"

    light = write_light(tmp_path, "l.fits", scene, np.random.default_rng(9))
    (o,) = calibrate_paths(lib, store, [light], CalibrateOptions(bad_pixels="correct")).outcomes
    assert o.status is Status.CALIBRATED, o.message
    with fits.open(o.output) as hdul:
        flags = hdul["FLAGS"].data
        flag_header = hdul["FLAGS"].header
        data = hdul[0].data
    assert flags[10, 10] == PixelFlag.HOT | PixelFlag.CORRECTED
    assert flag_header["FLAGBIT1"] == "hot pixel"
    assert flag_header["FLAGBIT5"] == "replaced from neighbours"
    neighbours = data[9:12, 9:12].ravel()[[0, 1, 2, 3, 5, 6, 7, 8]]
    assert data[10, 10] == np.median(neighbours)
    assert "master bpm" in "\n".join(fits.getheader(o.output)["HISTORY"])

    # a new map supersedes the old one and marks the light for recalibration
    assert CliRunner().invoke(main, ["bpm", "--library", db]).exit_code == 0
    assert store.get(str(light.resolve())).needs_recal
    store.close()
    lib.close()



def test_stopping_early_leaves_no_partial_outputs(setup):
    from indical.calib.calibrate import Calibrator
    from indical.calib.catalogue import MasterCatalogue
    tmp, lib, store, scene, _ = setup
    rng = np.random.default_rng(11)
    lights = [write_light(tmp / "many", f"l{i}.fits", scene, rng) for i in range(12)]
    calibrator = Calibrator(MasterCatalogue.from_library(lib), CalibrateOptions(workers=2))
    run = calibrator.run(lights)
    next(run)
    run.close()   # what Ctrl-C does to the loop: GeneratorExit at the yield
    outputs = sorted((tmp / "many" / "calibrated").glob("*"))
    assert 1 <= len(outputs) < 12, "lights not yet started were not started"
    assert all(not p.name.startswith(".") for p in outputs), "no temporary files left"
    for p in outputs:
        assert fits.getdata(p).shape == (60, 80)


def test_sky_flats_recognised_and_nearest_in_time_used(tmp_path):
    """Twilight flat masters keep no SUNALT (it differs per frame); the source frames have it.
    A light of the night before uses that night's dawn flat, although a newer dusk flat
    superseded it."""
    from indical.calib.catalogue import MasterCatalogue
    from indical.calib.ingest import inspect_file
    from calib_fixtures import light_meta
    from indical.fits.io import write_frame
    from indical.frame import Frame
    lib, scene, masters = standard_library(tmp_path / "lib")
    store = StatusStore(lib.db_path)
    made = []
    for night, hour, factor in (("dawn", 5, 1.0), ("dusk", 18, 1.1)):
        ids = []
        for i in range(2):
            meta = light_meta(frame_type=FrameType.FLAT, exposure_s=2.0, filter="L",
                              sun_altitude_deg=-6.0 + i,
                              start=T0.replace(hour=hour) + timedelta(days=1, minutes=i))
            p = write_frame(Frame((scene.flat * 20000).astype(np.uint16), meta),
                            tmp_path / night / f"f{i}.fits")
            rec, _ = lib.add_frame(inspect_file(p))
            ids.append(rec.id)
        rec = add_master(lib, FrameType.FLAT, scene.flat * factor, name=f"sky_{night}.fits",
                         filter="L", temperature_c=None,
                         created=masters["flat"].created_at + timedelta(hours=hour),
                         sources=ids)
        made.append(rec)
    cat = MasterCatalogue.from_library(lib)
    sky = {m.path.name: m for m in cat.infos if m.sky}
    assert set(sky) == {"sky_dawn.fits", "sky_dusk.fits"}
    assert sky["sky_dawn.fits"].superseded          # the dusk flat replaced it in the library
    light = write_light(tmp_path, "late.fits", scene, np.random.default_rng(3),
                        start=T0.replace(hour=3) + timedelta(days=1))   # 03:00, before that dawn
    (o,) = calibrate_paths(lib, store, [light], CalibrateOptions()).outcomes
    assert fits.getheader(o.output)["CALFLAT"] == "sky_dawn.fits"
    store.close()
    lib.close()


def test_integer_output_of_a_camera_that_shifts_12_bits_to_the_top(tmp_path):
    """A 12-bit camera storing its values x16: the integer output is scaled back to 0..4095."""
    lib, scene, masters = standard_library(tmp_path / "lib")
    store = StatusStore(lib.db_path)
    shifted = scene.__class__(scene.sky * 16, scene.bias * 16, scene.dark_rate * 16, scene.flat,
                              scene.read_noise_adu * 16)
    add_master(lib, FrameType.DARK, (scene.bias + scene.dark_rate * 30) * 16, name="dark16.fits",
               exposure_s=30.0, created=masters["dark"].created_at + timedelta(hours=1))
    light = write_light(tmp_path, "l12.fits", shifted, np.random.default_rng(2), bit_depth=12)
    (o,) = calibrate_paths(lib, store, [light], CalibrateOptions(
        bit_depth_output=True, out_dir=tmp_path / "int")).outcomes
    assert o.status is Status.CALIBRATED, o.message
    ints = fits.getdata(o.output).astype(float)
    expected = np.clip(scene.sky * np.mean(scene.flat), 0, 4095)
    assert abs(np.median(ints - expected)) < 3 and ints.max() <= 4095
    assert "divided by 16" in "\n".join(fits.getheader(o.output)["HISTORY"])
    store.close()
    lib.close()
