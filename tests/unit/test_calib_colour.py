"""One-shot-colour (Bayer) sensors through the calibration core: master flats normalised per CFA
channel (or overall when asked), bad pixels judged and corrected per colour, calibrated lights
flat in every channel and still undebayered, masters of another pattern or phase refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from colour_synthetic import BIAS_ADU, PANEL_RGB, SKY_RGB, by_colour, colour_map, make_sensor
from indical.calib.autobuild import AutoBuildPolicy, build_group, due_groups
from indical.calib.bpm import BadPixelOptions, build_bad_pixel_map
from indical.calib.bpm_masters import build_bad_pixel_maps
from indical.calib.calibrate import CalibrateOptions, calibrate_paths
from indical.calib.config import CameraConfig
from indical.calib.flags import PixelFlag
from indical.calib.library import CalibrationLibrary
from indical.calib.master import MasterError, MasterSpec, Precal, build_master
from indical.calib.match import LightInfo, MasterInfo, MasterKind, MatchRules, mismatch
from indical.calib.status import Status, StatusStore
from indical.frame import Binning, FrameType, cfa_planes

FLAT_LEVEL = 30000.0
SKY_LEVEL = 8000.0
LIGHT_S = 60.0


def _channel_means(data: np.ndarray, pattern: str) -> dict[tuple[int, int], float]:
    return {pos: float(np.mean(data[pos[0]::2, pos[1]::2], dtype=np.float64))
            for _, pos in cfa_planes(pattern)}


def _flats(sensor, folder: Path, n: int = 5, **changes) -> list[Path]:
    rng = np.random.default_rng(11)
    return [sensor.write(folder, f"flat_{i}.fits", FrameType.FLAT, 1.0,
                         sensor.flat_signal(FLAT_LEVEL), rng, index=i, **changes)
            for i in range(n)]


@pytest.mark.parametrize("bayerpat, offsets, pattern", [
    ("RGGB", (0, 0), "RGGB"), ("RGGB", (1, 0), "GRBG"), ("BGGR", (1, 1), "RGGB")])
def test_master_flat_each_channel_has_mean_one(tmp_path, bayerpat, offsets, pattern):
    sensor = make_sensor(pattern, bayerpat=bayerpat, offsets=offsets)
    paths = _flats(sensor, tmp_path)
    spec = MasterSpec(paths=paths, frame_type=FrameType.FLAT,
                      precal=Precal(pedestal_adu=BIAS_ADU, description="pedestal"))
    build = build_master(spec)
    means = _channel_means(build.data, pattern)
    assert all(abs(m - 1.0) < 1e-6 for m in means.values()), means
    assert build.header["FLATNORM"] == "CHANNEL"
    # the CFA keywords are the sources' own: Siril and the library read the phase from them
    assert (build.header["BAYERPAT"], build.header["XBAYROFF"], build.header["YBAYROFF"]) == \
        (bayerpat, *offsets)
    # the colour cast is gone from the master, the vignetting is not
    colours = colour_map(pattern, build.data.shape)
    assert np.std(build.data) > 0.05
    red, blue = build.data[colours == "R"], build.data[colours == "B"]
    assert abs(np.mean(red) / np.mean(blue) - 1.0) < 1e-5


def test_master_flat_with_one_overall_factor_keeps_the_colour_cast(tmp_path):
    sensor = make_sensor("RGGB")
    spec = MasterSpec(paths=_flats(sensor, tmp_path), frame_type=FrameType.FLAT,
                      precal=Precal(pedestal_adu=BIAS_ADU, description="pedestal"),
                      flat_normalisation="overall")
    build = build_master(spec)
    assert abs(float(np.mean(build.data, dtype=np.float64)) - 1.0) < 1e-6
    assert build.header["FLATNORM"] == "OVERALL"
    colours = colour_map("RGGB", build.data.shape)
    ratio = np.mean(build.data[colours == "R"]) / np.mean(build.data[colours == "B"])
    assert ratio == pytest.approx(PANEL_RGB[0] / PANEL_RGB[2], rel=0.02)


def test_mono_flats_take_one_factor_and_mixed_phases_are_refused(tmp_path):
    sensor = make_sensor("RGGB")
    mono = _flats(sensor, tmp_path / "mono", 3, bayer_pattern=None)
    build = build_master(MasterSpec(paths=mono, frame_type=FrameType.FLAT))
    assert build.header["FLATNORM"] == "OVERALL" and "BAYERPAT" not in build.header
    shifted = _flats(sensor, tmp_path / "shifted", 3, bayer_offset_x=1)
    same = _flats(sensor, tmp_path / "same", 3)
    with pytest.raises(MasterError, match="Bayer patterns at pixel 0,0 differ \\(GRBG, RGGB\\)"):
        build_master(MasterSpec(paths=same + shifted, frame_type=FrameType.FLAT))


def _library_with_masters(root: Path, sensor, policy: AutoBuildPolicy,
                          target=None) -> CalibrationLibrary:
    """Flats, dark flats and darks of the lights' exposure, ingested and built by the library
    (`target`: its database, default an SQLite file under root/lib)."""
    raw = root / "raw"
    rng = np.random.default_rng(3)
    zero = np.zeros(sensor.shape)
    _flats(sensor, raw / "flats")
    for i in range(5):
        sensor.write(raw / "darkflats", f"df_{i}.fits", FrameType.DARKFLAT, 1.0, zero, rng, i)
        sensor.write(raw / "darks", f"dark_{i}.fits", FrameType.DARK, LIGHT_S, zero, rng, i)
    lib = CalibrationLibrary(target or root / "lib" / "library.sqlite", root=root / "lib")
    lib.ingest([raw])
    for group in due_groups(lib, policy):
        build_group(lib, group, policy)
    return lib


def _lights(sensor, folder: Path, n: int = 3) -> list[Path]:
    rng = np.random.default_rng(21)
    return [sensor.write(folder, f"light_{i}.fits", FrameType.LIGHT, LIGHT_S,
                         sensor.sky_signal(SKY_LEVEL), rng, index=10 + i) for i in range(n)]


def _blocks(plane: np.ndarray, size: int = 8) -> np.ndarray:
    h, w = (plane.shape[0] // size) * size, (plane.shape[1] // size) * size
    return plane[:h, :w].reshape(h // size, size, w // size, size).mean(axis=(1, 3))


def _calibrate(root: Path, sensor, policy: AutoBuildPolicy, target=None, **options):
    lib = _library_with_masters(root, sensor, policy, target)
    lights = _lights(sensor, root / "night")
    store = StatusStore(lib.db_path)
    try:
        summary = calibrate_paths(lib, store, lights, CalibrateOptions(**options))
    finally:
        store.close()
    return lib, lights, summary


@pytest.mark.parametrize("bayerpat, offsets, pattern", [("RGGB", (0, 0), "RGGB"),
                                                        ("RGGB", (1, 0), "GRBG")])
def test_calibrated_colour_lights_are_flat_in_every_channel(tmp_path, library_target, bayerpat,
                                                           offsets, pattern):
    """On both library backends (the pattern goes through the masters' rows)."""
    sensor = make_sensor(pattern, bayerpat=bayerpat, offsets=offsets)
    lib, lights, summary = _calibrate(tmp_path, sensor, AutoBuildPolicy(min_frames_for_master=3),
                                      library_target)
    with lib:
        flats = [m for m in lib.masters() if m.frame_type is FrameType.FLAT]
        assert [m.config.bayer_pattern for m in flats] == [pattern]
    assert [o.status for o in summary.outcomes] == [Status.CALIBRATED] * 3, \
        [o.message for o in summary.outcomes]
    outputs = []
    for o in summary.outcomes:
        with fits.open(o.output) as hdul:
            header, data = hdul[0].header, hdul[0].data.astype(np.float64)
        assert data.shape == sensor.shape            # undebayered: one plane, the raw layout
        assert (header["BAYERPAT"], header["XBAYROFF"], header["YBAYROFF"]) == \
            (bayerpat, *offsets)
        assert "CALFLAT" in header
        outputs.append(data)
    stacked = np.mean(outputs, axis=0)
    raw = np.mean([fits.getdata(p).astype(np.float64) for p in lights], axis=0)
    levels = {}
    for name, (dy, dx) in cfa_planes(pattern):
        blocks = _blocks(stacked[dy::2, dx::2])
        spread = np.max(np.abs(blocks / np.median(blocks) - 1))
        raw_blocks = _blocks(raw[dy::2, dx::2])
        raw_spread = np.max(np.abs(raw_blocks / np.median(raw_blocks) - 1))
        print(f"{name} at ({dx}, {dy}): blocks within {spread:.2%} (raw {raw_spread:.1%})")
        assert spread < 0.01, f"{name} at ({dx}, {dy}): blocks differ by {spread:.2%}"
        assert raw_spread > 0.1                                          # vignetted before
        levels.setdefault(name, []).append(np.median(blocks))
    # each channel kept the sky's own colour: the panel's cast was divided out per channel
    r, g, b = (np.mean(levels[c]) for c in "RGB")
    assert r / g == pytest.approx(SKY_RGB[0] / SKY_RGB[1], rel=0.01)
    assert b / g == pytest.approx(SKY_RGB[2] / SKY_RGB[1], rel=0.01)


def test_an_overall_flat_is_divided_by_one_factor(tmp_path):
    """The option's master says FLATNORM = 'OVERALL'; calibration honours it, so the flat's
    colour (the panel's) is divided out of the light along with the vignetting."""
    sensor = make_sensor("RGGB")
    policy = AutoBuildPolicy(min_frames_for_master=3, flat_normalisation="overall")
    lib, _, summary = _calibrate(tmp_path, sensor, policy)
    lib.close()
    assert [o.status for o in summary.outcomes] == [Status.CALIBRATED] * 3
    data = np.mean([fits.getdata(o.output).astype(np.float64) for o in summary.outcomes], axis=0)
    colours = colour_map("RGGB", sensor.shape)
    level = {c: np.median(data[colours == c]) for c in "RGB"}
    assert level["R"] / level["G"] == pytest.approx(
        (SKY_RGB[0] / PANEL_RGB[0]) / (SKY_RGB[1] / PANEL_RGB[1]), rel=0.02)
    for _, (dy, dx) in cfa_planes("RGGB"):
        blocks = _blocks(data[dy::2, dx::2])
        assert np.max(np.abs(blocks / np.median(blocks) - 1)) < 0.01


def test_a_hot_red_pixel_is_replaced_from_red_neighbours(tmp_path):
    sensor = make_sensor("RGGB")
    y, x = 20, 40                                      # even row, even column: red in RGGB
    assert colour_map("RGGB", sensor.shape)[y, x] == "R"
    sensor.dark_rate[y, x] = 80.0                      # hot in the darks: 4800 ADU in 60 s
    policy = AutoBuildPolicy(min_frames_for_master=3)
    lib = _library_with_masters(tmp_path, sensor, policy)
    lights = _lights(sensor, tmp_path / "night", 1)
    with StatusStore(lib.db_path) as store:
        (bpm,) = build_bad_pixel_maps(lib, store)
        assert bpm.info.config.bayer_pattern == "RGGB"
        summary = calibrate_paths(lib, store, lights, CalibrateOptions(bad_pixels="correct"))
    lib.close()
    (o,) = summary.outcomes
    assert o.status is Status.CALIBRATED, o.message
    with fits.open(o.output) as hdul:
        data = hdul[0].data.astype(np.float64)
        flags = hdul["FLAGS"].data
    assert flags[y, x] & PixelFlag.HOT and flags[y, x] & PixelFlag.CORRECTED
    red = [data[y + dy, x + dx] for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx]
    assert data[y, x] == pytest.approx(float(np.median(red)), rel=1e-6)
    # neighbours of any colour would give a value far from red: the sky is 2.2x greener
    mixed = [data[y + dy, x + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    assert abs(np.median(mixed) / data[y, x] - 1) > 0.3


def test_bad_pixels_of_a_colour_flat_are_judged_per_channel():
    """A flat with a strong cast, normalised by one factor: blue answers with a quarter of red's
    light everywhere. Per channel only the broken pixel is cold; judged as one image, every blue
    pixel would be."""
    sensor = make_sensor("RGGB")
    flat = sensor.flat_signal(1.0)
    flat /= flat.mean()
    colours = colour_map("RGGB", flat.shape)
    flat[41, 61] *= 0.4                                 # a broken blue pixel
    assert colours[41, 61] == "B"
    bpm = build_bad_pixel_map(None, flat, BadPixelOptions(), bayer="RGGB")
    assert list(zip(*np.nonzero(bpm))) == [(41, 61)] and bpm[41, 61] == PixelFlag.COLD
    whole = build_bad_pixel_map(None, flat, BadPixelOptions())
    assert np.count_nonzero(whole[colours == "B"]) > 0.9 * np.count_nonzero(colours == "B")


def _config(pattern):
    return CameraConfig(camera="Colour Cam", gain=100.0, offset=10.0, binning=Binning(1, 1),
                        width=128, height=96, bayer_pattern=pattern)


@pytest.mark.parametrize("master, light, said", [
    (None, "RGGB", "mono is not colour (RGGB at pixel 0,0): a mono master never calibrates"),
    ("RGGB", None, "colour (RGGB at pixel 0,0) is not mono"),
    ("RGGB", "GRBG", "Bayer phase RGGB is not GRBG at pixel 0,0"),
])
def test_pattern_and_phase_are_part_of_the_configuration(master, light, said):
    from datetime import datetime, timezone
    info = MasterInfo(id=1, kind=MasterKind.FLAT, path=Path("flat.fits"), config=_config(master),
                      created=datetime(2026, 3, 20, tzinfo=timezone.utc), filter="OSC")
    why = mismatch(LightInfo(_config(light), 60.0, "OSC"), info, MatchRules())
    assert why is not None and said in why
    same = LightInfo(_config(master), 60.0, "OSC")
    assert mismatch(same, info, MatchRules()) is None


def test_a_colour_light_is_not_calibrated_with_mono_masters(tmp_path):
    mono = make_sensor("RGGB")
    mono.bayerpat = None                        # the same camera's frames without BAYERPAT
    lib = _library_with_masters(tmp_path, mono, AutoBuildPolicy(min_frames_for_master=3))
    assert {m.config.bayer_pattern for m in lib.masters()} == {None}
    lights = _lights(make_sensor("RGGB"), tmp_path / "night", 1)
    with StatusStore(lib.db_path) as store:
        (o,) = calibrate_paths(lib, store, lights, CalibrateOptions()).outcomes
    lib.close()
    assert o.status is Status.NO_MASTERS and "dark" in o.message


def test_another_programs_colour_flat_is_normalised_per_channel_when_applied():
    """A colour flat without FLATNORM (not normalised, in ADU) is divided per CFA channel, as
    indical's own masters are written; FLATNORM = 'OVERALL' is one factor."""
    from indical.calib.apply import normalise_flat
    sensor = make_sensor("GBRG")
    flat = (sensor.flat_signal(20000.0)).astype(np.float32)
    per_channel = 1.0 / normalise_flat(flat, bayer="GBRG").reciprocal
    for _, (dy, dx) in cfa_planes("GBRG"):
        assert float(np.mean(per_channel[dy::2, dx::2], dtype=np.float64)) == \
            pytest.approx(1.0, abs=1e-5)
    overall = 1.0 / normalise_flat(flat).reciprocal
    assert float(np.mean(overall, dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    colours = colour_map("GBRG", flat.shape)
    assert np.mean(overall[colours == "R"]) / np.mean(overall[colours == "B"]) == \
        pytest.approx(PANEL_RGB[0] / PANEL_RGB[2], rel=0.02)
    assert by_colour("GBRG", (2, 2), (1, 2, 3)).tolist() == [[2, 3], [1, 2]]


def test_given_masters_of_another_pattern_or_phase_are_refused(tmp_path):
    """`indical calibrate --dark --flat`: a mono flat for a colour light, or a flat of another
    phase, is refused with the reason, even with --allow-mismatch; a dark without BAYERPAT only
    with it."""
    from click.testing import CliRunner

    from indical.cli import main

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    sensor = make_sensor("RGGB")
    rng = np.random.default_rng(8)
    zero = np.zeros(sensor.shape)
    flats = {"colour": _flats(sensor, tmp_path / "colour"),
             "mono": _flats(sensor, tmp_path / "mono", 3, bayer_pattern=None),
             "shifted": _flats(sensor, tmp_path / "shifted", 3, bayer_offset_y=1)}
    darks = {kind: [sensor.write(tmp_path / f"dark_{kind}", f"d{i}.fits", FrameType.DARK,
                                 LIGHT_S, zero, rng, i, **changes) for i in range(3)]
             for kind, changes in (("colour", {}), ("mono", {"bayer_pattern": None}))}
    masters = {}
    for kind, paths in [*((f"flat_{k}", v) for k, v in flats.items()),
                        *((f"dark_{k}", v) for k, v in darks.items())]:
        masters[kind] = tmp_path / f"{kind}.fits"
        r = invoke("master", *paths, "-o", masters[kind], "--precal", f"pedestal:{BIAS_ADU:g}"
                   if kind.startswith("flat") else "none")
        assert r.exit_code == 0, r.output
    (light,) = _lights(sensor, tmp_path / "night", 1)
    r = invoke("calibrate", light, "-o", tmp_path / "out", "--dark", masters["dark_colour"],
               "--flat", masters["flat_mono"], "--allow-mismatch")
    assert r.exit_code != 0 and "mono is not colour (RGGB at pixel 0,0)" in r.output, r.output
    r = invoke("calibrate", light, "-o", tmp_path / "out", "--dark", masters["dark_colour"],
               "--flat", masters["flat_shifted"])
    assert r.exit_code != 0 and "Bayer phase GBRG is not RGGB at pixel 0,0" in r.output, r.output
    r = invoke("calibrate", light, "-o", tmp_path / "out", "--dark", masters["dark_mono"],
               "--flat", masters["flat_colour"])
    assert r.exit_code != 0 and "records no BAYERPAT" in r.output, r.output
    r = invoke("calibrate", light, "-o", tmp_path / "out", "--dark", masters["dark_mono"],
               "--flat", masters["flat_colour"], "--allow-mismatch")
    assert r.exit_code == 0 and "1 calibrated" in r.output, r.output


def test_colour_frames_group_apart_by_phase_and_name_their_pattern(tmp_path):
    """`indical master --group`: flats of two phases are two groups whose masters get two names
    (the label carries the pattern at pixel 0,0)."""
    from indical.calib.grouping import GroupingOptions, group_frames
    from indical.calib.ingest import ingest_paths

    sensor = make_sensor("RGGB")
    paths = _flats(sensor, tmp_path / "a", 3) + _flats(sensor, tmp_path / "b", 3,
                                                       bayer_offset_x=1)
    paths += _flats(sensor, tmp_path / "c", 3, bayer_pattern=None)
    groups, _ = group_frames(ingest_paths(paths).records,
                             GroupingOptions.parse("size,filter", min_group=3))
    labels = sorted(g.label() for g in groups)
    assert len(labels) == 3 == len(set(labels))
    patterns = [{"RGGB", "GRBG"} & set(label.split("_")) for label in labels]
    assert sorted(map(sorted, patterns)) == [[], ["GRBG"], ["RGGB"]]
