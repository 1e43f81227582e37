"""Matching picks the right master among decoys."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from indical.calib.checks import calibration_warnings
from indical.calib.config import CameraConfig
from indical.calib.match import (LightInfo, MasterKind, MasterInfo, MatchRules, best_master,
                                 choose_masters, mismatch)
from indical.frame import Binning

NOW = datetime(2026, 3, 21, 12, 0, tzinfo=timezone.utc)
LIGHT = LightInfo(CameraConfig(camera="ZWO ASI2600MM", width=6248, height=4176, gain=100,
                               offset=50, readout_mode=None, temperature_c=-10.2),
                  exposure_s=120.0, filter="Ha", time=datetime(2026, 3, 20, 23, 0, tzinfo=timezone.utc))

_ids = iter(range(1, 10_000))
CONFIG_FIELDS = {f.name for f in fields(CameraConfig)}


def master(kind=MasterKind.DARK, **changes) -> MasterInfo:
    """The right master of `kind` for LIGHT, with `changes` (configuration fields too)."""
    config = {"temperature_c": -10.0,
              **{k: changes.pop(k) for k in list(changes) if k in CONFIG_FIELDS}}
    base = dict(id=next(_ids), kind=kind, path=Path(f"/lib/{kind.value}.fits"),
                config=replace(LIGHT.config, **config),
                created=NOW - timedelta(days=3), filter=None,
                exposure_s=120.0 if kind is MasterKind.DARK else 0.0,
                expires=NOW + timedelta(days=27))
    if kind is MasterKind.FLAT:
        base["filter"] = "Ha"
    base.update(changes)
    return MasterInfo(**base)


def test_right_dark_among_decoys():
    right = master()
    decoys = [
        master(gain=200, created=NOW - timedelta(hours=1)),                 # wrong gain, newer
        master(temperature_c=0.0, created=NOW - timedelta(hours=1)),        # wrong temperature
        master(superseded=True, created=NOW - timedelta(hours=2)),          # superseded
        master(temperature_c=-10.2, created=NOW - timedelta(days=90),       # expired, closer T
               expires=NOW - timedelta(days=60)),
        master(exposure_s=300.0),                                           # wrong exposure
        master(offset=10),
        master(binning=Binning(2, 2)),
        master(width=3124, height=2088),
        master(camera="QHY268M"),
        master(readout_mode="High Gain Mode"),
        master(kind=MasterKind.BIAS),
    ]
    for order in (decoys + [right], [right] + decoys):
        assert best_master(LIGHT, order, MasterKind.DARK, now=NOW) is right


def test_newest_of_equals_and_closest_temperature_first():
    old = master(created=NOW - timedelta(days=10))
    new = master(created=NOW - timedelta(days=1))
    assert best_master(LIGHT, [old, new], MasterKind.DARK, now=NOW) is new
    near = master(temperature_c=-10.1, created=NOW - timedelta(days=10))
    far = master(temperature_c=-11.5, created=NOW - timedelta(days=1))
    assert best_master(LIGHT, [far, near], MasterKind.DARK, now=NOW) is near


def test_expired_master_used_only_when_nothing_else():
    expired = master(expires=NOW - timedelta(days=1))
    assert best_master(LIGHT, [expired], MasterKind.DARK, now=NOW) is expired
    choice = choose_masters(LIGHT, [expired, master(kind=MasterKind.FLAT)], now=NOW)
    warnings = calibration_warnings(LIGHT, choice, NOW)
    assert any(w.startswith("stale master: master dark") for w in warnings)


def test_exposure_tolerance_for_cmos_darks():
    rules = MatchRules(exposure_tol_s=0.5, exposure_rel_tol=0.02)
    assert mismatch(LIGHT, master(exposure_s=120.4), rules) is None
    assert "exposure" in mismatch(LIGHT, master(exposure_s=123.0), rules)
    assert mismatch(LIGHT, master(exposure_s=122.0), rules) is None  # 2 % of 120 s = 2.4 s
    assert mismatch(LIGHT, master(exposure_s=300.0), MatchRules(scale_darks=True)) is None


def test_temperature_tolerance():
    assert mismatch(LIGHT, master(temperature_c=-8.3), MatchRules(temperature_tol_c=2.0)) is None
    reason = mismatch(LIGHT, master(temperature_c=-8.0), MatchRules(temperature_tol_c=2.0))
    assert reason.startswith("temperature -8.0 C is more than 2 C from -10.2 C")


def test_flats_match_filter_and_ignore_temperature_by_default():
    ha = master(kind=MasterKind.FLAT, temperature_c=15.0)
    oiii = master(kind=MasterKind.FLAT, filter="OIII", created=NOW)
    assert best_master(LIGHT, [oiii, ha], MasterKind.FLAT, now=NOW) is ha
    assert "temperature" in mismatch(LIGHT, ha, MatchRules(flat_temperature_tol_c=5.0))


def test_sky_flat_nearest_in_time_even_if_superseded():
    dusk = master(kind=MasterKind.FLAT, sky=True, superseded=True,
                  observed=datetime(2026, 3, 20, 18, 30, tzinfo=timezone.utc))
    dawn = master(kind=MasterKind.FLAT, sky=True, superseded=True,
                  observed=datetime(2026, 3, 21, 5, 0, tzinfo=timezone.utc))
    later = master(kind=MasterKind.FLAT, sky=True, created=NOW,
                   observed=datetime(2026, 3, 21, 18, 30, tzinfo=timezone.utc))
    early = LightInfo(**{**LIGHT.__dict__, "time": datetime(2026, 3, 20, 20, 0, tzinfo=timezone.utc)})
    late = LightInfo(**{**LIGHT.__dict__, "time": datetime(2026, 3, 21, 4, 0, tzinfo=timezone.utc)})
    assert best_master(early, [later, dawn, dusk], MasterKind.FLAT, now=NOW) is dusk
    assert best_master(late, [later, dusk, dawn], MasterKind.FLAT, now=NOW) is dawn
    # a superseded panel flat is not used
    panel = master(kind=MasterKind.FLAT, superseded=True)
    assert best_master(LIGHT, [panel], MasterKind.FLAT, now=NOW) is None


def test_panel_flats_first_sky_flats_where_no_panel_flat_matches():
    """The source is chosen before the master: a newer sky flat of the light's own night never
    outranks a panel flat, and a sky flat serves a filter that has no panel flat."""
    panel = master(kind=MasterKind.FLAT, flat_source="PANEL", created=NOW - timedelta(days=6))
    sky = master(kind=MasterKind.FLAT, flat_source="SKY", created=NOW,
                 observed=LIGHT.time - timedelta(hours=1))
    unknown = master(kind=MasterKind.FLAT, created=NOW - timedelta(days=1))
    for order in ([panel, sky, unknown], [unknown, sky, panel]):
        assert best_master(LIGHT, order, MasterKind.FLAT, now=NOW) is panel
    assert best_master(LIGHT, [sky, unknown], MasterKind.FLAT, now=NOW) is unknown
    other_filter = replace(panel, filter="OIII")
    assert best_master(LIGHT, [other_filter, sky], MasterKind.FLAT, now=NOW) is sky
    # asked for one source: only that source, and the reason for the others
    sky_only = MatchRules(flat_source="SKY")
    assert best_master(LIGHT, [panel, sky, unknown], MasterKind.FLAT, sky_only, NOW) is sky
    assert mismatch(LIGHT, panel, sky_only) == "a panel flat, and sky flats were asked for"
    assert mismatch(LIGHT, unknown, MatchRules(flat_source="PANEL")) == \
        "a flat of unknown source, and panel flats were asked for"
    choice = choose_masters(LIGHT, [master(), sky], rules=MatchRules(flat_source="PANEL"), now=NOW)
    assert choice.flat is None and choice.missing == ("panel flat for filter Ha",)
    assert calibration_warnings(LIGHT, choice, NOW) == [
        "missing panel flat for filter Ha: the light was not flat-fielded"]
    assert "flat (sky) filter Ha" in sky.describe()
    with pytest.raises(ValueError, match="PANEL or SKY"):
        MatchRules(flat_source="panel")


def test_choose_cmos_and_ccd():
    dark, flat, bias = master(), master(kind=MasterKind.FLAT), master(kind=MasterKind.BIAS)
    cmos = choose_masters(LIGHT, [bias, dark, flat], now=NOW)
    assert (cmos.dark, cmos.flat, cmos.bias, cmos.missing) == (dark, flat, None, ())
    long_dark = master(exposure_s=600.0)
    ccd = choose_masters(LIGHT, [bias, long_dark, flat], ccd=True, now=NOW)
    assert (ccd.bias, ccd.dark, ccd.missing) == (bias, long_dark, ())
    none = choose_masters(LIGHT, [long_dark], now=NOW)
    assert none.missing == ("dark 120 s (-10.2 C)", "flat for filter Ha")
    assert choose_masters(LIGHT, [dark], ccd=True, now=NOW).missing == ("bias", "flat for filter Ha")


def test_warnings_temperature_and_missing_flat():
    warm = master(temperature_c=-8.5)
    choice = choose_masters(LIGHT, [warm], now=NOW)
    w = calibration_warnings(LIGHT, choice, NOW, negative="40% of the pixels are negative")
    assert w[0].startswith("temperature mismatch: master dark 120 s -8.5 C")
    assert "+1.7 C" in w[0]
    assert w[1].startswith("missing flat for filter Ha")
    assert w[2].startswith("40%")
    ok = choose_masters(LIGHT, [master(temperature_c=-10.0), master(kind=MasterKind.FLAT)], now=NOW)
    assert calibration_warnings(LIGHT, ok, NOW) == []


@pytest.mark.parametrize("light_t,warn", [(None, True), (-10.0, False)])
def test_unknown_temperature_is_said(light_t, warn):
    light = replace(LIGHT, config=replace(LIGHT.config, temperature_c=light_t))
    choice = choose_masters(light, [master(), master(kind=MasterKind.FLAT)], now=NOW)
    assert any("temperature not checked" in w for w in calibration_warnings(light, choice, NOW)) is warn
