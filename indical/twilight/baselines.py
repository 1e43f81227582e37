"""The two ways peers choose twilight exposures, on the same footing as indical's ramp so a
benchmark can run all three on identical skies: the same sun window, waiting and stopping
rules, filter order and first frame per filter; only the next exposure differs.

- Ratio feedback: next = last x target / measured (most capture programs).
- Tyson & Gal (1993): a fixed schedule from the first good frame of a filter, the sky taken as
  R0 a^t with a = 10^(k/60 s), k = -0.094 dex/min at dusk and +0.091 at dawn, each exposure
  integrating the same counts as the first."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from indical.twilight.controller import Verdict
from indical.twilight.ramp import Action, Expose, Stop, TwilightRamp, Wait
from indical.twilight.window import Twilight

TYSON_GAL_DEX_PER_MIN = {Twilight.DUSK: -0.094, Twilight.DAWN: 0.091}


@dataclass
class _Last:
    exposure_s: float
    level_adu: float
    start_unix: float


def _verdict(level: float, ramp: TwilightRamp, margin: float = 0.03) -> Verdict:
    inner = ramp.target.tolerance - margin
    if level > ramp.target.target_adu * (1 + inner):
        return Verdict.TOO_BRIGHT
    if level < ramp.target.target_adu * (1 - inner):
        return Verdict.TOO_DARK
    return Verdict.EXPOSE


def _clamped(ramp: TwilightRamp, exposure_s: float) -> float:
    return min(max(exposure_s, ramp.exposure.min_s), ramp.exposure.max_s)


def _out_of_reach(ramp: TwilightRamp, filter_name: str, verdict: Verdict, now_unix: float,
                  exposure_s: float) -> Action:
    """Wait a little when the sky will come into reach, stop when it has gone out of it."""
    waiting = (verdict is Verdict.TOO_BRIGHT) == (ramp.twilight is Twilight.DUSK)
    if waiting:
        return Wait(now_unix + max(10.0, exposure_s), f"sky {verdict.value}")
    return Stop(f"sky {verdict.value}")


@dataclass
class RatioRamp(TwilightRamp):
    """next = last x target / measured, from the last usable frame of the same filter."""

    last: dict[str, _Last] = field(default_factory=dict)

    def _decide(self, filter_name: str, now_unix: float) -> Action:
        first = super()._decide(filter_name, now_unix)
        prev = self.last.get(filter_name)
        if not isinstance(first, Expose) or prev is None:
            return first
        ideal = prev.exposure_s * self.target.target_adu / max(prev.level_adu, 1.0)
        exposure = _clamped(self, ideal)
        predicted = prev.level_adu * exposure / prev.exposure_s
        verdict = _verdict(predicted, self)
        if verdict is not Verdict.EXPOSE:
            return _out_of_reach(self, filter_name, verdict, now_unix, exposure)
        return Expose(exposure, predicted)

    def record(self, filter_name: str, *, decided_unix: float, start_unix: float,
               exposure_s: float, level_adu: float, level_usable: bool, saturated: bool):
        if level_usable:
            self.last[filter_name] = _Last(exposure_s, max(level_adu, 1.0), start_unix)
        return super().record(filter_name, decided_unix=decided_unix, start_unix=start_unix,
                              exposure_s=exposure_s, level_adu=level_adu,
                              level_usable=level_usable, saturated=saturated)


@dataclass
class TysonGalRamp(TwilightRamp):
    """A fixed exponential schedule from the first in-band frame of each filter."""

    first_good: dict[str, _Last] = field(default_factory=dict)

    def _decide(self, filter_name: str, now_unix: float) -> Action:
        first = super()._decide(filter_name, now_unix)
        good = self.first_good.get(filter_name)
        if not isinstance(first, Expose) or good is None:
            return first
        ln_a = TYSON_GAL_DEX_PER_MIN[self.twilight] / 60.0 * math.log(10.0)
        s_int = math.expm1(ln_a * good.exposure_s) / ln_a      # integral of a^t over frame 1
        start = self.predicted_start(now_unix) - good.start_unix
        arg = math.exp(ln_a * start) + s_int * ln_a
        ideal = math.inf if arg <= 0 else math.log(arg) / ln_a - start
        exposure = _clamped(self, ideal)
        collected = math.exp(ln_a * start) * math.expm1(ln_a * exposure) / ln_a
        predicted = good.level_adu * collected / s_int
        verdict = _verdict(predicted, self)
        if verdict is not Verdict.EXPOSE:
            return _out_of_reach(self, filter_name, verdict, now_unix, exposure)
        return Expose(exposure, predicted)

    def record(self, filter_name: str, *, decided_unix: float, start_unix: float,
               exposure_s: float, level_adu: float, level_usable: bool, saturated: bool):
        if (filter_name not in self.first_good and level_usable and not saturated
                and self.target.contains(level_adu)):
            self.first_good[filter_name] = _Last(exposure_s, level_adu, start_unix)
        return super().record(filter_name, decided_unix=decided_unix, start_unix=start_unix,
                              exposure_s=exposure_s, level_adu=level_adu,
                              level_usable=level_usable, saturated=saturated)


RAMPS: dict[str, type[TwilightRamp]] = {
    "predictive": TwilightRamp,
    "ratio": RatioRamp,
    "tyson-gal": TysonGalRamp,
}
