"""Colour flats normalised per channel are scaled per CFA position before rejection: twilight
flats change colour through the stack, and one factor per frame leaves their channels apart by
that change, which rejection mistakes for outliers (or which hides a real one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from indical.calib.combine.engine import CombineInput, combine_files
from indical.calib.combine.options import CombineOptions, Method
from indical.calib.master import MasterSpec, Precal, build_master
from indical.errors import FitsError
from indical.frame import FrameType

PEDESTAL = 1000
OUTLIER = (10, 12)     # a red pixel (RGGB: even row, even column)


def _sky_flats(folder: Path, n: int, drift: float = 0.05, hit: float = 1.15) -> list[Path]:
    """RGGB twilight flats, 32 x 32: the sky brightens from 15000 to 30000 ADU while its red
    rises 5 % and its blue falls 5 % (R/B drifts 10.5 % across the stack); vignetting 20 %;
    noise 0.5 % of the signal; one frame in the middle holds a cosmic-ray-like hit, `hit` times
    the pixel's own level."""
    folder.mkdir(parents=True, exist_ok=True)
    h = w = 32
    yy, xx = np.mgrid[0:h, 0:w]
    vignette = 1.0 - 0.2 * ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (h * h / 2)
    rng = np.random.default_rng(14)
    paths = []
    for k, (t, level) in enumerate(zip(np.linspace(-1, 1, n), np.linspace(15000, 30000, n))):
        cast = np.empty((h, w))
        cast[0::2, 0::2] = 0.55 * (1 + drift * t)       # R
        cast[0::2, 1::2] = cast[1::2, 0::2] = 0.8       # G
        cast[1::2, 1::2] = 1.0 * (1 - drift * t)        # B: the sky is blue
        signal = level * cast * vignette * (1 + rng.normal(0, 0.005, (h, w)))
        if k == n // 2:
            signal[OUTLIER] *= hit
        header = fits.Header({"IMAGETYP": "Flat Field", "EXPTIME": 1.0, "FILTER": "L",
                              "INSTRUME": "Sky Cam", "BAYERPAT": "RGGB", "SUNALT": -5.0})
        path = folder / f"flat_{k:02d}.fits"
        fits.PrimaryHDU(np.round(PEDESTAL + signal).astype(np.uint16), header).writeto(path)
        paths.append(path)
    return paths


# Sigma clipping at 4.5 sigma over 30 frames: at 3 sigma the noise alone would send some 80
# of the 30720 normal values either way, whatever the scaling; and one value among n can't be
# more than (n - 1) / sqrt(n) standard deviations (those of the n values, itself included) from
# the rest, 5.3 for 30. Winsorized clipping (Siril's, 15 frames, 3 sigma) cuts some of the
# noise's own tails whatever the scaling (its iterations shrink the spread; 1.7 % of the values
# here): there the values rejected must be those it rejects in the same frames without the
# drift. Percentile clipping at 4 % of the median: 8 sigma of the noise.
CASES = [  # method, frames, options, hit; what one factor per frame does wrong
    (Method.SIGMA, 30, {"sigma_low": 4.5, "sigma_high": 4.5}, 1.15, "keeps"),
    (Method.WINSORIZED, 15, {}, 1.08, "keeps"),
    (Method.PERCENTILE, 6, {"percentile_low": 0.04, "percentile_high": 0.04}, 1.15,
     "rejects good"),
]


@pytest.mark.parametrize("method, n, options, hit, overall_fault", CASES,
                         ids=[c[0].value for c in CASES])
def test_per_channel_scaling_rejects_the_outlier_and_nothing_else(tmp_path, method, n, options,
                                                                  hit, overall_fault):
    paths = _sky_flats(tmp_path / "drift", n, hit=hit)

    def build(normalisation: str, frames: list[Path] = paths):
        return build_master(MasterSpec(
            paths=frames, frame_type=FrameType.FLAT,
            options=CombineOptions(method=method, **options),
            precal=Precal(pedestal_adu=PEDESTAL, description="pedestal"),
            flat_normalisation=normalisation))

    channel = build("channel")
    rejected = channel.result.rejected
    if method is Method.WINSORIZED:
        # the same noise and hit, the sky's colour constant: what the method rejects by itself
        steady = build("channel", _sky_flats(tmp_path / "steady", n, drift=0.0, hit=hit))
        differ = int(np.count_nonzero(rejected != steady.result.rejected))
        assert differ <= 0.01 * rejected.size   # a value near the threshold, here or there
        assert rejected[OUTLIER] >= 1           # the hit (the value below shows it is gone)
    else:
        assert rejected[OUTLIER] == 1 and int(rejected.sum()) == 1   # all normal values kept
    assert channel.result.cell_scales is not None
    assert channel.header["NORMALIZ"] == "multiplicative"
    # the master at the hit is what its neighbours of the same colour say (vignetting is
    # smooth over 2 pixels)
    y, x = OUTLIER
    neighbours = (channel.data[y, x - 2] + channel.data[y, x + 2]) / 2
    assert channel.data[y, x] == pytest.approx(neighbours, rel=0.01)

    overall = build("overall").result.rejected
    assert overall is not None
    if overall_fault == "keeps":
        assert overall[OUTLIER] == 0       # the drift widened the spread: the hit stays in
    else:
        good = int(overall.sum()) - int(overall[OUTLIER])
        assert good > 100                  # frames at the ends of the drift are cut


def _flats_with_noise(folder: Path, n: int = 7) -> list[Path]:
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        data = PEDESTAL + rng.normal(20000 + 1000 * k, 300, (40, 24))
        path = folder / f"f{k}.fits"
        fits.PrimaryHDU(np.round(data).astype(np.uint16),
                        fits.Header({"IMAGETYP": "Flat Field", "EXPTIME": 1.0})).writeto(path)
        paths.append(path)
    return paths


def test_one_factor_at_all_four_positions_is_one_factor_per_frame(tmp_path):
    """The kernel's per-position scaling with the same factor at all four positions gives the
    bits of one factor per frame (a precalibration image too, every method), and bands of rows
    starting on odd rows put together are the whole image. (The reference comparison with
    four different factors is in test_calib_combine_native.py.)"""
    paths = _flats_with_noise(tmp_path)
    precal = np.random.default_rng(6).normal(50.0, 3.0, (40, 24))
    levels = [20000.0 + 1000 * k for k in range(len(paths))]
    for method in (Method.SIGMA, Method.WINSORIZED, Method.PERCENTILE, Method.MEDIAN):
        common = dict(paths=paths, options=CombineOptions(method=method), normalise=True,
                      precal_image=precal, pedestal_adu=float(PEDESTAL), rejection_map=True,
                      levels_adu=levels)
        kernel = combine_files(CombineInput(**common))
        cells = [np.full((2, 2), lv) for lv in levels]
        per_cell = combine_files(CombineInput(**common, per_cell_position=True,
                                              cell_levels_adu=cells))
        assert per_cell.cell_scales is not None
        np.testing.assert_array_equal(per_cell.data, kernel.data)
        np.testing.assert_array_equal(per_cell.rejected, kernel.rejected)
        # bands start on odd rows too: the cell positions follow the frame's rows
        bands = [combine_files(CombineInput(**common, per_cell_position=True,
                                            cell_levels_adu=cells), rows=(a, b))
                 for a, b in ((0, 13), (13, 26), (26, 40))]
        np.testing.assert_array_equal(np.concatenate([b.data for b in bands]), kernel.data)


def test_a_colour_flat_dark_in_one_channel_is_refused_by_name(tmp_path):
    paths = _sky_flats(tmp_path, 3)
    with fits.open(paths[1], mode="update") as hdul:
        data = hdul[0].data
        data[1::2, 1::2] = PEDESTAL            # no blue at all: a broken frame
    with pytest.raises(FitsError, match=r"flat_01\.fits.*CFA position \(1, 1\)"):
        build_master(MasterSpec(paths=paths, frame_type=FrameType.FLAT,
                                options=CombineOptions(method=Method.MEDIAN),
                                precal=Precal(pedestal_adu=PEDESTAL, description="pedestal")))
