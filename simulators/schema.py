"""The rig-file keys the simulated devices accept, with defaults, checked once when the rig is
read. Every physical parameter of the simulated observatory is settable here."""

from __future__ import annotations

from typing import Any, Mapping

from indical.settings import Setting, between, non_negative, positive, read_settings
from indical.simulators.models.cfa import check_channel_flux, check_pattern
from indical.simulators.models.optics import OpticsParams
from indical.simulators.models.panel import DEFAULT_RESPONSE, PanelParams
from indical.simulators.models.sensor import SensorParams
from indical.simulators.models.sky import SkyParams

_sp = SensorParams()


def _bits(v: Any) -> str | None:
    return None if v in (12, 14, 16) else f"must be 12, 14 or 16, got {v}"


def _response(v: Any) -> str | None:
    if not all(isinstance(pt, list) and len(pt) == 2 and all(isinstance(x, (int, float))
               and not isinstance(x, bool) for x in pt) for pt in v):
        return "must be a list of [brightness, relative_flux] pairs"
    problem = PanelParams(response=tuple((float(b), float(f)) for b, f in v)).check()
    return problem


def _names(v: Any) -> str | None:
    if not v or not all(isinstance(n, str) and n for n in v):
        return "must be a non-empty list of filter names"
    return None


def _nights(v: Any) -> str | None:
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v):
        return "must be a list of night numbers counted from 1, like [2, 5]"
    return None


def _bayer_offset(v: Any) -> str | None:
    return None if v in (0, 1) else f"must be 0 or 1 (pixels the pattern starts in), got {v}"


def _fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else f"must be between 0 and 1, got {v}"


ROLE_SCHEMAS: dict[str, list[Setting]] = {
    "camera": [
        Setting("name", str, "Sim Camera"),
        Setting("width", int, _sp.width, check=positive),
        Setting("height", int, _sp.height, check=positive),
        Setting("bit_depth", int, _sp.bit_depth, check=_bits),
        Setting("gain_e_per_adu", float, _sp.gain_e_per_adu, check=positive),
        Setting("read_noise_e", float, _sp.read_noise_e, check=non_negative),
        Setting("bias_adu", float, _sp.bias_adu, check=non_negative),
        Setting("full_well_e", float, _sp.full_well_e, check=positive),
        Setting("min_exposure_s", float, _sp.min_exposure_s, check=non_negative),
        Setting("max_exposure_s", float, _sp.max_exposure_s, check=positive),
        Setting("pixel_size_um", float, _sp.pixel_size_um, check=positive),
        Setting("dark_e_per_s", float, _sp.dark_e_per_s, check=non_negative),
        Setting("dark_ref_temp_c", float, _sp.dark_ref_temp_c),
        Setting("dark_doubling_c", float, _sp.dark_doubling_c, check=positive),
        Setting("hot_pixel_fraction", float, _sp.hot_pixel_fraction, check=_fraction),
        Setting("hot_pixel_factor", float, _sp.hot_pixel_factor, check=positive),
        Setting("cold_pixel_fraction", float, _sp.cold_pixel_fraction, check=_fraction),
        Setting("cold_pixel_response", float, _sp.cold_pixel_response, check=_fraction),
        Setting("prnu", float, _sp.prnu, check=non_negative),
        Setting("jitter_s", float, _sp.jitter_s, check=non_negative),
        Setting("stack_threshold_s", (float, type(None)), None),
        Setting("stack_count", int, _sp.stack_count, check=positive),
        Setting("left_justify", bool, _sp.left_justify),
        Setting("seed", int, _sp.seed),
        Setting("bayer_pattern", (str, type(None)), None, "one-shot colour: the colours of the "
                "top-left 2x2 pixels, RGGB, GRBG, GBRG or BGGR (absent: mono)",
                check=check_pattern),
        Setting("bayer_offset_x", int, 0, "the pattern starts this many columns in (0 or 1)",
                check=_bayer_offset),
        Setting("bayer_offset_y", int, 0, "the pattern starts this many rows in (0 or 1)",
                check=_bayer_offset),
        Setting("readout_s", float, 0.5, check=non_negative),
        Setting("ambient_c", float, 10.0),
        Setting("cooler", bool, True),
        Setting("cooling_rate_c_per_min", float, 5.0, check=positive),
        Setting("max_binning", int, 4, check=positive),
        Setting("hang", bool, False, "fault injection: exposures never finish"),
        Setting("light_source", dict, {}, "a panel that is not simulated, for the camera to "
                "see: {gpio_pin, active_high, max_flux_e_per_s} or {alnitak_state}"),
    ],
    "panel": [
        Setting("name", str, "Sim Flip-Flat"),
        Setting("dimmable", bool, True),
        Setting("max_brightness", int, 255, check=positive),
        Setting("response", list, [list(p) for p in DEFAULT_RESPONSE], check=_response),
        Setting("max_flux_e_per_s", float, PanelParams().max_flux_e_per_s, check=positive),
        Setting("pwm_hz", (float, type(None)), None),
        Setting("row_time_s", float, PanelParams().row_time_s, check=positive),
        Setting("channel_flux", list, list(PanelParams().channel_flux), "relative flux of the "
                "light in each colour channel [r, g, b] (colour sensors)",
                check=check_channel_flux),
        Setting("on_cover", bool, True, "the light box is on the inside of the cover"),
    ],
    "cover": [
        Setting("name", str, "Sim Flip-Flat cover"),
        Setting("travel_s", float, 5.0, check=non_negative),
        Setting("closed", bool, False, "state at start"),
    ],
    "filter_wheel": [
        Setting("name", str, "Sim Filter Wheel"),
        Setting("names", list, ["L", "R", "G", "B", "Ha"], check=_names),
        Setting("throughput", list, [], "relative throughput per slot (default 1.0 each)"),
        Setting("seconds_per_slot", float, 0.5, check=non_negative),
    ],
    "relay": [Setting("name", str, "Sim Relay")],
    "mount": [
        Setting("name", str, "Sim Mount"),
        Setting("arcsec_per_px", float, 1.5, check=positive),
    ],
    "weather": [
        Setting("name", str, "Sim Weather"),
        Setting("cloudy_nights", list, [], "nights (1 = the first evening on or after the "
                "simulated clock's start) cloudy from dusk to dawn; the simulated sky has "
                "clouds too",
                check=_nights),
    ],
}

_sky = SkyParams()
_opt = OpticsParams()

TABLE_SCHEMAS: dict[str, list[Setting]] = {
    "clock": [
        Setting("start", str, "", "ISO time the simulated clock starts at (default: now)"),
        Setting("speed", float, 0.0, "simulated seconds per wall second; 0 = as fast as possible",
                check=non_negative),
    ],
    "sky": [
        Setting("zero_point_mag", float, _sky.zero_point_mag),
        Setting("offset_mag", float, _sky.offset_mag),
        Setting("gradient", float, _sky.gradient),
        Setting("star_count", int, _sky.star_count, check=non_negative),
        Setting("star_flux_e_per_s", list, list(_sky.star_flux_e_per_s)),
        Setting("cloud_probability", float, _sky.cloud_probability, check=_fraction),
        Setting("trail_probability", float, _sky.trail_probability, check=_fraction),
        Setting("seed", int, _sky.seed),
        Setting("twilight_slope", float, _sky.twilight_slope,
                "how fast the twilight sky fades, relative to Patat's Paranal sky", check=positive),
        Setting("channel_flux", list, list(_sky.channel_flux), "relative flux of the sky in "
                "each colour channel [r, g, b] (colour sensors; blue by default)",
                check=check_channel_flux),
    ],
    "optics": [
        Setting("vignetting", float, _opt.vignetting, check=between(0, 0.95)),
        Setting("dust_count", int, _opt.dust_count, check=non_negative),
        Setting("dust_radius_px", list, list(_opt.dust_radius_px)),
        Setting("dust_depth", list, list(_opt.dust_depth)),
        Setting("gradient", float, _opt.gradient),
        Setting("seed", int, _opt.seed),
    ],
}


def read_role(role: str, table: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = read_settings(table, ROLE_SCHEMAS[role], source=source, section=role)
    if role == "camera":
        if out["min_exposure_s"] >= out["max_exposure_s"]:
            from indical.errors import RigError
            raise RigError(source, "[camera] min_exposure_s", "must be below max_exposure_s")
    return out


def read_table(section: str, table: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = read_settings(table, TABLE_SCHEMAS[section], source=source, section=section, ignore=())
    if section == "sky":
        out["star_flux_e_per_s"] = tuple(out["star_flux_e_per_s"])
        out["channel_flux"] = tuple(float(v) for v in out["channel_flux"])
    if section == "clock" and out["start"]:
        from datetime import datetime
        try:
            datetime.fromisoformat(out["start"])
        except ValueError:
            from indical.errors import RigError
            raise RigError(source, "[clock] start",
                           f"not an ISO time (like 2026-03-20T17:30:00+00:00): {out['start']!r}") from None
    return out
