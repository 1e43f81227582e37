"""Building masters: headers other tools match on, flats normalised to mean 1, and every kind
of bad input refused with a message naming the file, with nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from indical.calib.combine import CombineOptions
from indical.calib.master import MasterSpec, Precal, build_master, write_master
from indical.cli import main
from indical.frame import FrameType
from indical.testing.frames import synthetic_data, write_synthetic


def flats(folder, n=5, **kw):
    return [write_synthetic(folder / f"flat_{i}.fits", FrameType.FLAT, level_adu=20000 + 500 * i,
                            seed=i, vignetting=True, **kw) for i in range(n)]


def darks(folder, n=5, level=500, exposure_s=30.0, **kw):
    return [write_synthetic(folder / f"dark_{i}.fits", FrameType.DARK, level_adu=level, seed=10 + i,
                            exposure_s=exposure_s, **kw) for i in range(n)]


def test_master_flat_headers_and_mean_one(tmp_path):
    paths = flats(tmp_path)
    build = build_master(MasterSpec(paths, options=CombineOptions(method="sigma", sigma_low=2.5)))
    out = write_master(build, tmp_path / "master.fits")
    with fits.open(out) as hdul:
        h, data = hdul[0].header, hdul[0].data
    assert data.dtype == np.dtype(">f4") and "BZERO" not in h and "BSCALE" not in h
    assert float(np.mean(data, dtype=np.float64)) == pytest.approx(1.0, abs=1e-6)
    assert h["IMAGETYP"] == "Master Flat" and h["NCOMBINE"] == 5
    assert h["COMBMETH"] == "sigma" and h["CMBSLOW"] == 2.5 and h["CMBCENT"] == "median"
    for key, value in {"EXPTIME": 1.0, "CCD-TEMP": -10.0, "SET-TEMP": -10.0, "GAIN": 100.0,
                       "OFFSET": 10.0, "XBINNING": 1, "YBINNING": 1, "FILTER": "L",
                       "INSTRUME": "Sim Cam", "PRECAL": "none"}.items():
        assert h[key] == value, key
    assert [h[f"IMCMB{i:03d}"] for i in range(1, 6)] == [p.name for p in paths]
    # vignetting survives normalisation: centre brighter than corner
    assert data[24, 32] > 1.05 > 0.95 > data[0, 0]


def test_master_flat_says_what_lit_it(tmp_path):
    from indical.calib.catalogue import is_sky_flat
    sky = [write_synthetic(tmp_path / "sky" / f"s{i}.fits", FrameType.FLAT, seed=i,
                           sun_altitude_deg=-4.0 - i) for i in range(3)]
    panel = [write_synthetic(tmp_path / "panel" / f"p{i}.fits", FrameType.FLAT, seed=i,
                             panel_brightness=120) for i in range(3)]
    plain = flats(tmp_path / "plain", n=3)
    for paths, source in ((sky, "SKY"), (panel, "PANEL"), (plain, None)):
        out = write_master(build_master(MasterSpec(paths)), tmp_path / f"m_{source}.fits")
        assert fits.getheader(out).get("FLATSRC") == source
        for p in paths:
            p.unlink()  # the master alone must say it
        assert is_sky_flat(out) is (source == "SKY")


def test_dark_master_not_normalised(tmp_path):
    build = build_master(MasterSpec(darks(tmp_path), options=CombineOptions(method="median")))
    assert abs(float(np.median(build.data)) - 500) < 3
    assert build.header["IMAGETYP"] == "Master Dark" and build.header["BUNIT"] == "ADU"


def test_flat_precal_image_subtracted(tmp_path):
    paths = flats(tmp_path, n=3)
    bias = np.full((48, 64), 10000.0, dtype=np.float32)
    plain = build_master(MasterSpec(paths, options=CombineOptions(method="mean")))
    build = build_master(MasterSpec(paths, options=CombineOptions(method="mean"),
                                    precal=Precal(image=bias, description="file bias.fits")))
    assert np.allclose(np.subtract(plain.result.levels_adu, build.result.levels_adu), 10000)
    # with the bias removed first, the normalised vignetting is deeper
    assert build.data[0, 0] < plain.data[0, 0] - 0.05
    assert build.header["PRECAL"] == "file bias.fits"


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    result.text = " ".join(result.output.split())  # rich wraps long lines at 80 columns
    return result


def test_cli_builds_and_refuses_to_overwrite(tmp_path):
    paths = darks(tmp_path)
    out = tmp_path / "md.fits"
    r = invoke("master", *paths, "-o", out, "--combine", "sigma", "--sigma-low", 2, "--sigma-high", 4,
               "--center", "mean", "--maxiters", 3, "--rejection-map", tmp_path / "rej.fits")
    assert r.exit_code == 0, r.output
    assert fits.getheader(out)["CMBSHIGH"] == 4.0 and fits.getheader(out)["CMBCENT"] == "mean"
    assert fits.getdata(tmp_path / "rej.fits").shape == (48, 64)
    before = out.read_bytes()
    r = invoke("master", *paths, "-o", out)
    assert r.exit_code == 2 and "md.fits: already exists; use --force" in r.text
    assert out.read_bytes() == before
    r = invoke("master", *paths, "-o", out, "--force", "--combine", "median")
    assert r.exit_code == 0 and fits.getheader(out)["COMBMETH"] == "median"


def test_cli_group_out_dir_and_move_inputs(tmp_path):
    raw = tmp_path / "raw"
    darks(raw, n=3, exposure_s=30.0)
    for i in range(3):
        write_synthetic(raw / f"dark60_{i}.fits", FrameType.DARK, level_adu=520, seed=30 + i,
                        exposure_s=60.0)
    write_synthetic(raw / "lonely.fits", FrameType.DARK, level_adu=520, exposure_s=300.0)
    r = invoke("master", raw, "--group", "size,exposure,temp:1", "--min-group", 3,
               "--out-dir", tmp_path / "masters", "--move-inputs", tmp_path / "used")
    assert r.exit_code == 0, r.output
    built = sorted(p.name for p in (tmp_path / "masters").iterdir())
    assert len(built) == 2 and any("_30s_" in b for b in built) and any("_60s_" in b for b in built)
    assert "1 frames, fewer than --min-group 3; skipped" in r.text
    assert sorted(p.name for p in raw.iterdir()) == ["lonely.fits"]
    assert len(list((tmp_path / "used").iterdir())) == 6


def test_cli_precal_pedestal_and_file(tmp_path):
    paths = flats(tmp_path, n=3)
    bias = write_synthetic(tmp_path / "bias.fits", FrameType.BIAS, level_adu=300, exposure_s=0.0)
    r = invoke("master", *paths, "-o", tmp_path / "a.fits", "--precal", "pedestal:100", "--combine", "mean")
    assert r.exit_code == 0, r.output
    assert fits.getheader(tmp_path / "a.fits")["PEDESTAL"] == 100
    r = invoke("master", *paths, "-o", tmp_path / "b.fits", "--precal", bias, "--combine", "mean")
    assert r.exit_code == 0, r.output
    assert fits.getheader(tmp_path / "b.fits")["PRECAL"] == "file bias.fits"


# -- bad input: each names the file; no output appears ----------------------------------------

def _bad(tmp_path, args, *words):
    out = tmp_path / "out.fits"
    r = invoke("master", *args, "-o", out)
    assert r.exit_code == 2, r.output
    for w in words:
        assert w in r.text, (w, r.output)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.fits")]


def test_bad_sizes_listed(tmp_path):
    paths = darks(tmp_path, n=3) + [write_synthetic(tmp_path / "big.fits", FrameType.DARK,
                                                    level_adu=500, exposure_s=30.0, shape=(50, 70))]
    _bad(tmp_path, paths, "different sizes", "64x48: dark_0.fits, dark_1.fits, dark_2.fits",
         "70x50: big.fits")


def test_bad_nan(tmp_path):
    data = np.full((48, 64), 500.0, dtype=np.float32)
    data[3, 3] = np.nan
    paths = darks(tmp_path, n=3) + [write_synthetic(tmp_path / "nan.fits", FrameType.DARK, data=data,
                                                    exposure_s=30.0)]
    _bad(tmp_path, paths, "nan.fits: 1 pixels are NaN")


def test_bad_all_zero(tmp_path):
    zero = write_synthetic(tmp_path / "zero.fits", FrameType.DARK, exposure_s=30.0,
                           data=np.zeros((48, 64), np.uint16))
    _bad(tmp_path, darks(tmp_path, n=3) + [zero], "zero.fits: every pixel is zero")


def test_bad_truncated_and_not_fits(tmp_path):
    good = darks(tmp_path / "good", n=3)
    cut = write_synthetic(tmp_path / "cut.fits", FrameType.DARK, exposure_s=30.0, shape=(100, 100))
    cut.write_bytes(cut.read_bytes()[:-3000])
    _bad(tmp_path, good + [cut], "cut.fits: truncated")
    text = tmp_path / "readme.fits"
    text.write_text("not a fits file")
    _bad(tmp_path, good + [text], "readme.fits: not a readable FITS file")


def test_bad_lying_headers(tmp_path):
    # a 'flat' that is really a dark
    liar = write_synthetic(tmp_path / "liar.fits", FrameType.FLAT, level_adu=500)
    _bad(tmp_path, flats(tmp_path / "f", n=3) + [liar], "liar.fits: header says flat", "dark or bias")
    # a 'dark' that was lit
    lit = write_synthetic(tmp_path / "lit.fits", FrameType.DARK, level_adu=20000, exposure_s=30.0)
    _bad(tmp_path, darks(tmp_path / "d", n=3) + [lit], "lit.fits: header says dark", "was it lit")
    # a 'bias' with a long exposure
    biases = [write_synthetic(tmp_path / f"b{i}.fits", FrameType.BIAS, level_adu=300, seed=i,
                              exposure_s=0.0) for i in range(3)]
    long = write_synthetic(tmp_path / "long.fits", FrameType.BIAS, level_adu=300, exposure_s=120.0)
    _bad(tmp_path, biases + [long], "long.fits: header says bias but the exposure is 120 s")


def test_bad_type_mismatch_and_ignore_type(tmp_path):
    paths = darks(tmp_path, n=3)
    _bad(tmp_path, [*paths, "--type", "bias"], "dark_0.fits: header says dark, not bias", "--ignore-type")
    r = invoke("master", *paths, "--type", "darkflat", "--ignore-type", "-o", tmp_path / "df.fits")
    assert r.exit_code == 0, r.output
    assert fits.getheader(tmp_path / "df.fits")["IMAGETYP"] == "Master Dark Flat"


def test_bad_too_few_frames(tmp_path):
    _bad(tmp_path, [*darks(tmp_path, n=4), "--combine", "minmax", "--clip", 2],
         "minmax with --clip 2 needs at least 5 frames, got 4", "dark_0.fits")


def test_bad_mixed_types(tmp_path):
    _bad(tmp_path, darks(tmp_path, n=2) + flats(tmp_path, n=2), "different types", "dark_0.fits",
         "flat_0.fits")


def test_ctrl_c_leaves_nothing_half_written(tmp_path, monkeypatch):
    paths = darks(tmp_path / "in", n=3)
    import indical.calib.master as master_mod

    def interrupted(job, progress=None):
        progress(1, 48)
        raise KeyboardInterrupt
    monkeypatch.setattr(master_mod, "combine_files", interrupted)
    r = invoke("master", *paths, "-o", tmp_path / "out.fits")
    assert r.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert len(list((tmp_path / "in").iterdir())) == 3


def test_ctrl_c_while_writing_removes_the_temporary_file(tmp_path, monkeypatch):
    paths = darks(tmp_path / "in", n=3)
    import indical.calib.master as master_mod

    def interrupted(fh, data, header):
        fh.write(b"SIMPLE  = partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(master_mod, "write_image", interrupted)
    r = invoke("master", *paths, "-o", tmp_path / "out.fits")
    assert r.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
