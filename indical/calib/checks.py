"""Warnings about a calibration that worked but deserves a second look."""

from __future__ import annotations

from datetime import datetime, timezone

from indical.calib.match import LightInfo, MasterChoice, MasterKind, MasterInfo


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def temperature_warnings(light: LightInfo, used: list[MasterInfo],
                         warn_above_c: float = 1.0) -> list[str]:
    """Bias and darks more than warn_above_c from the light's temperature (matching allows a
    wider tolerance; past this the dark current differs noticeably)."""
    out = []
    for m in used:
        if m.kind not in (MasterKind.BIAS, MasterKind.DARK):
            continue
        light_c, master_c = light.config.temperature_c, m.config.temperature_c
        if light_c is None:
            out.append(f"temperature not checked: the light has no sensor temperature "
                       f"(CCD-TEMP); {m.describe()} was used")
            continue
        if master_c is None:
            out.append(f"temperature not checked: {m.describe()} has no temperature")
            continue
        delta = master_c - light_c
        if abs(delta) > warn_above_c:
            out.append(f"temperature mismatch: {m.describe()} is {delta:+.1f} C from the "
                       f"light ({light_c:.1f} C)")
    return out


def stale_warnings(used: list[MasterInfo], now: datetime) -> list[str]:
    out = []
    for m in used:
        if m.is_stale(now):
            age_d = (_aware(now) - _aware(m.created)).total_seconds() / 86400
            out.append(f"stale master: {m.describe()} is {age_d:.0f} days old, past its expiry "
                       f"of {_aware(m.expires).strftime('%Y-%m-%d')}; take new frames")
    return out


def missing_flat_warning(light: LightInfo, choice: MasterChoice) -> list[str]:
    if choice.flat is None:
        said = [m for m in choice.missing if "flat for filter" in m]
        what = said[0] if said else f"flat for filter {light.filter or '(none)'}"
        return [f"missing {what}: the light was not flat-fielded"]
    return []


def calibration_warnings(light: LightInfo, choice: MasterChoice, now: datetime,
                         negative: str | None = None) -> list[str]:
    """All warnings for one calibrated light, in a stable order."""
    out = temperature_warnings(light, choice.used)
    out += stale_warnings(choice.used, now)
    out += missing_flat_warning(light, choice)
    if negative:
        out.append(negative)
    return out
