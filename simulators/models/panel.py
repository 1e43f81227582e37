"""Flat panel model: brightness setting to light.

The response is a curve of (brightness, relative flux) points, interpolated and non-decreasing:
electroluminescent and LED panels respond non-linearly and give no light below some level.
Brightness is an integer from 0 to max_brightness. An on/off panel (a relay-switched EL panel)
has one level. PWM-dimmed panels flicker: exposures shorter than a few PWM periods show bands.
No panel is quite white: `channel_flux` is the relative flux its light gives each colour channel
of a one-shot-colour sensor (models/cfa.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A near-white panel as a colour sensor sees it (r, g, b): green highest, as the filters and the
#: silicon's response make it for white light.
DEFAULT_PANEL_COLOUR = (0.9, 1.0, 0.85)

DEFAULT_RESPONSE: tuple[tuple[float, float], ...] = (
    (0, 0.0), (9, 0.0), (10, 0.004), (32, 0.05), (64, 0.16), (128, 0.43), (192, 0.73),
    (255, 1.0),
)


@dataclass(frozen=True)
class PanelParams:
    dimmable: bool = True
    max_brightness: int = 255
    response: tuple[tuple[float, float], ...] = DEFAULT_RESPONSE
    max_flux_e_per_s: float = 40000.0    # per pixel at relative flux 1, before optics and filter
    pwm_hz: float | None = None          # flicker frequency of a PWM-dimmed panel
    row_time_s: float = 20e-6            # rolling-shutter line time, for PWM bands
    channel_flux: tuple[float, float, float] = DEFAULT_PANEL_COLOUR   # relative r, g, b

    def check(self) -> str | None:
        """A reason the parameters are unusable, or None."""
        if self.max_brightness < 1:
            return "max_brightness must be at least 1"
        if len(self.response) < 2:
            return "response needs at least two [brightness, relative_flux] points"
        b = [pt[0] for pt in self.response]
        f = [pt[1] for pt in self.response]
        if any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
            return "response brightness values must increase"
        if any(f2 < f1 for f1, f2 in zip(f, f[1:])):
            return "response must be monotone non-decreasing in flux"
        if min(f) < 0:
            return "response fluxes must be 0 or more"
        return None

    def relative_flux(self, brightness: int) -> float:
        if not self.dimmable:
            return float(self.response[-1][1])
        b = [pt[0] for pt in self.response]
        f = [pt[1] for pt in self.response]
        return float(np.interp(brightness, b, f))

    def flux_e_per_s(self, brightness: int) -> float:
        return self.max_flux_e_per_s * self.relative_flux(brightness)

    def min_usable_brightness(self) -> int:
        """Lowest brightness that gives any light."""
        for level in range(0, self.max_brightness + 1):
            if self.relative_flux(level) > 0:
                return level
        return self.max_brightness


def pwm_banding(params: PanelParams, exposure_s: float, height: int, phase: float) -> np.ndarray | None:
    """Row-wise relative modulation for a PWM panel, or None when the exposure spans enough
    periods that the bands average out (more than 50 periods)."""
    if params.pwm_hz is None or params.pwm_hz <= 0:
        return None
    periods = exposure_s * params.pwm_hz
    if periods >= 50:
        return None
    amplitude = 0.5 / max(periods, 1.0)
    rows = np.arange(height, dtype=np.float32)
    return (1.0 + amplitude * np.sin(2 * np.pi * (rows * params.row_time_s * params.pwm_hz + phase))
            ).astype(np.float32)
