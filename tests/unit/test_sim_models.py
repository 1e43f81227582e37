"""Physical models of the simulated observatory behave like the physics they model."""

from __future__ import annotations

import numpy as np
import pytest

from indical.simulators.models.optics import (OpticsParams, donuts, illumination_map,
                                              vignetting_map)
from indical.simulators.models.panel import DEFAULT_RESPONSE, PanelParams, pwm_banding
from indical.simulators.models.sensor import Sensor, SensorParams
from indical.simulators.models.sky import SkyParams, patat_mag, sky_flux


def rng(seed=0):
    return np.random.default_rng(seed)


# -- optics --
def test_vignetting_darker_in_corners_than_centre():
    v = vignetting_map(OpticsParams(vignetting=0.3), 400, 300)
    centre = v[150, 200]
    for corner in (v[0, 0], v[0, -1], v[-1, 0], v[-1, -1]):
        assert corner < centre
        assert corner == pytest.approx(0.7, abs=0.01)
    assert centre == pytest.approx(1.0, abs=1e-3)


def test_dust_donuts_are_below_their_surroundings():
    p = OpticsParams(vignetting=0.0, gradient=0.0, dust_count=4, seed=3)
    img = illumination_map(p, 512, 384)
    for d in donuts(p, 512, 384):
        ring = img[int(d.y), int(d.x + 0.7 * d.radius)]           # in the dark annulus
        outside = img[int(d.y), min(int(d.x + 1.6 * d.radius), 511)]
        assert ring < outside
        assert outside - ring == pytest.approx(d.depth, rel=0.5) or outside - ring > 0.01


def test_illumination_map_is_cached_and_read_only():
    p = OpticsParams()
    a = illumination_map(p, 64, 48)
    assert a is illumination_map(p, 64, 48)
    with pytest.raises(ValueError):
        a[0, 0] = 2


# -- panel --
def test_default_panel_curve_is_monotone_with_a_minimum_usable_level():
    p = PanelParams()
    assert p.check() is None
    fluxes = [p.relative_flux(b) for b in range(p.max_brightness + 1)]
    assert all(b >= a for a, b in zip(fluxes, fluxes[1:]))
    assert p.min_usable_brightness() == 10
    assert fluxes[p.min_usable_brightness() - 1] == 0.0
    assert fluxes[-1] == pytest.approx(1.0)
    # non-linear: half brightness gives well under half the light
    assert p.relative_flux(128) < 0.5


def test_panel_curve_rejects_decreasing_response():
    assert "monotone" in PanelParams(response=((0, 0.5), (10, 0.2))).check()
    assert "increase" in PanelParams(response=((0, 0.0), (0, 0.2))).check()


def test_on_off_panel_has_one_level():
    p = PanelParams(dimmable=False, response=DEFAULT_RESPONSE)
    assert p.relative_flux(0) == p.relative_flux(200) == 1.0


def test_pwm_bands_short_exposures_only():
    p = PanelParams(pwm_hz=500.0)
    short = pwm_banding(p, 0.002, 200, 0.0)
    assert short is not None and short.max() - short.min() > 0.5
    assert pwm_banding(p, 1.0, 200, 0.0) is None          # 500 periods average out
    assert pwm_banding(PanelParams(), 0.002, 200, 0.0) is None  # no PWM, no bands


# -- sensor --
def test_adc_clips_at_the_bit_depth():
    for bits in (12, 14, 16):
        s = Sensor(SensorParams(width=64, height=48, bit_depth=bits, full_well_e=1e9,
                                jitter_s=0.0))
        data, _ = s.render(1e7, 1.0, temp_c=0.0, rng=rng())
        assert data.max() == (1 << bits) - 1


def test_full_well_limits_the_signal():
    s = Sensor(SensorParams(width=64, height=48, bit_depth=16, full_well_e=20000,
                            gain_e_per_adu=1.0, bias_adu=100, jitter_s=0.0, prnu=0.0,
                            cold_pixel_fraction=0.0))
    data, _ = s.render(1e6, 1.0, temp_c=0.0, rng=rng())
    assert data.max() == 20100


def test_bias_frame_sits_at_the_bias_with_read_noise():
    p = SensorParams(width=200, height=150, bias_adu=800, read_noise_e=4.0, gain_e_per_adu=2.0,
                     hot_pixel_fraction=0.0)
    data, _ = Sensor(p).render(0.0, 0.001, temp_c=-10.0, rng=rng())
    assert np.median(data) == pytest.approx(800, abs=1)
    assert np.std(data.astype(float)) == pytest.approx(4.0 / 2.0, rel=0.15)


def test_dark_current_scales_with_time_and_doubles_every_six_degrees():
    p = SensorParams(width=300, height=200, dark_e_per_s=10.0, dark_ref_temp_c=0.0,
                     dark_doubling_c=6.0, read_noise_e=1.0, hot_pixel_fraction=0.0,
                     gain_e_per_adu=1.0, bias_adu=100, jitter_s=0.0)
    s = Sensor(p)

    def dark_level(t, temp):
        data, _ = s.render(0.0, t, temp_c=temp, rng=rng(int(t * 10 + temp + 100)))
        return float(np.mean(data)) - 100

    assert dark_level(20, 0) == pytest.approx(200, rel=0.03)
    assert dark_level(40, 0) == pytest.approx(2 * dark_level(20, 0), rel=0.03)
    assert dark_level(20, 6) == pytest.approx(2 * dark_level(20, 0), rel=0.03)
    assert dark_level(20, -12) == pytest.approx(dark_level(20, 0) / 4, rel=0.05)


def test_hot_pixels_stand_out_in_darks():
    p = SensorParams(width=300, height=200, hot_pixel_fraction=1e-3, dark_e_per_s=1.0)
    s = Sensor(p)
    data, _ = s.render(0.0, 60.0, temp_c=10.0, rng=rng())
    hot = s.hot_pixel_mask
    assert hot.sum() > 10
    assert np.median(data[hot]) > np.median(data[~hot]) + 1000


def test_prnu_and_cold_pixels_show_in_flats():
    p = SensorParams(width=300, height=200, prnu=0.02, cold_pixel_fraction=1e-3,
                     read_noise_e=0.0, jitter_s=0.0)
    s = Sensor(p)
    data, _ = s.render(20000.0, 1.0, temp_c=0.0, rng=rng())
    cold = s.cold_pixel_mask
    assert cold.sum() > 10
    assert np.median(data[cold]) < 0.5 * np.median(data[~cold])
    rel = data[~cold] / np.median(data[~cold])
    # photon noise ~0.7 %, PRNU 2 %: the spread is dominated by PRNU
    assert 0.018 < np.std(rel) < 0.03


def test_timing_jitter_matters_only_at_short_exposures():
    p = SensorParams(width=16, height=16, jitter_s=0.001)
    s = Sensor(p)
    reals = [s.render(0.0, 0.002, temp_c=0, rng=rng(i))[1] for i in range(200)]
    assert np.std(reals) == pytest.approx(0.001, rel=0.25)
    assert np.std(reals) / 0.002 > 0.3


def test_stacked_readout_mode_gives_12_bit_below_threshold_16_above():
    p = SensorParams(width=64, height=48, stack_threshold_s=1.0, stack_count=16,
                     full_well_e=1e9, gain_e_per_adu=1.0, jitter_s=0.0)
    s = Sensor(p)
    raw, _ = s.render(1e6, 0.5, temp_c=0, rng=rng())
    stacked, _ = s.render(1e6, 2.0, temp_c=0, rng=rng())
    assert raw.max() == 4095
    assert stacked.max() == 16 * 4095
    assert p.output_bits(0.5) == 12 and p.output_bits(2.0) == 16
    assert p.readout_mode(0.5) == "raw12" and p.readout_mode(2.0) == "stack16"


def test_left_justified_12_bit_data_is_shifted():
    p = SensorParams(width=32, height=32, bit_depth=12, left_justify=True, bias_adu=100,
                     read_noise_e=0.0, hot_pixel_fraction=0, jitter_s=0.0, dark_e_per_s=0.0)
    data, _ = Sensor(p).render(0.0, 0.001, temp_c=0, rng=rng())
    assert np.all(data % 16 == 0)
    assert np.median(data) == 1600


def test_binning_sums_pixels():
    p = SensorParams(width=64, height=48, read_noise_e=0, prnu=0, cold_pixel_fraction=0,
                     bias_adu=0, jitter_s=0, dark_e_per_s=0, hot_pixel_fraction=0)
    data, _ = Sensor(p).render(1000.0, 1.0, temp_c=0, binning=(2, 2), rng=rng())
    assert data.shape == (24, 32)
    assert np.median(data) == pytest.approx(4000, rel=0.05)


def test_same_seed_same_frame():
    p = SensorParams(width=64, height=48)
    a, _ = Sensor(p).render(500.0, 1.0, temp_c=0, rng=np.random.default_rng([1, 2]))
    b, _ = Sensor(p).render(500.0, 1.0, temp_c=0, rng=np.random.default_rng([1, 2]))
    assert np.array_equal(a, b)


# -- sky --
@pytest.mark.parametrize("alt, expected", [(-6, 13.30), (-9, 17.00), (-12, 19.67)])
def test_patat_v_band_matches_published_values(alt, expected):
    assert patat_mag("V", alt) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("band", ["U", "B", "V", "R", "I"])
def test_night_sky_stays_dark_below_the_fit(band):
    """Below -15 deg Patat's parabola turns bright again (V: brighter than daylight at -40
    deg): the sky darkens on to a night sky and stays there, whatever the hour."""
    mags = [patat_mag(band, alt) for alt in np.arange(-12.0, -90.0, -0.5)]
    assert all(b >= a for a, b in zip(mags, mags[1:]))
    assert patat_mag(band, -89.0) == pytest.approx(max(patat_mag(band, -15.0), 21.5))
    assert np.isfinite(sky_flux(SkyParams(), band, -60.0))


def test_sky_at_minus_six_in_v_within_005_mag_of_patat_formula():
    p = SkyParams(offset_mag=0.0, zero_point_mag=25.0)
    flux = sky_flux(p, "V", -6.0)
    m = 25.0 - 2.5 * np.log10(flux)
    x = 1.0  # zenith distance 96 deg - 95
    assert m == pytest.approx(11.84 + 1.518 * x - 0.057 * x * x, abs=0.05)


def test_sky_darkens_as_the_sun_sinks_by_about_a_magnitude_per_degree():
    p = SkyParams()
    alts = np.arange(-3.0, -12.5, -0.5)
    fluxes = [sky_flux(p, "R", a) for a in alts]
    assert all(b < a for a, b in zip(fluxes, fluxes[1:]))
    slope = -2.5 * np.log10(sky_flux(p, "V", -8) / sky_flux(p, "V", -7))
    assert 1.0 < slope < 1.5


@pytest.mark.parametrize("band", ["B", "V", "R"])
def test_daylight_sky_is_bright_but_finite_whatever_the_sun(band):
    """With the sun high the simulated sky stops at the daytime brightness: frames taken by day
    (a test run at noon at the simulated site) saturate instead of overflowing float32."""
    from indical.simulators.models.sky import DAYLIGHT_MAG, render_sky
    p = SkyParams()
    alts = np.arange(-5.0, 90.5, 5.0)
    fluxes = [sky_flux(p, band, a) for a in alts]
    assert all(b >= a for a, b in zip(fluxes, fluxes[1:]))
    assert max(fluxes) == pytest.approx(10 ** (-0.4 * (DAYLIGHT_MAG + p.offset_mag - 25.0)))
    with np.errstate(all="raise"):
        img, _ = render_sky(p, max(fluxes), (8, 8), offset_px=(0.0, 0.0),
                            rng=np.random.default_rng(0))
    assert np.isfinite(img).all()


@pytest.mark.parametrize("band", ["B", "V", "R", "I"])
def test_night_sky_stays_dark_when_the_sun_is_far_below(band):
    """Patat's parabola turns over near -17 deg; past it the sky keeps its night brightness
    (about 21-22 mag/arcsec^2) instead of brightening again towards midnight."""
    alts = np.arange(-5.0, -90.5, -2.5)
    mags = [patat_mag(band, a) for a in alts]
    assert all(b >= a for a, b in zip(mags, mags[1:]))
    assert 19.5 < mags[-1] < 23.0
