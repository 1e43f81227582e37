"""What a filter's name says about its sensitivity to the twilight sky, before any frame: a
prior for the first run's filter order and first exposure, replaced by what frames measure.

Relative to a clear (luminance) filter, about 300 nm wide: a broadband colour filter passes
about a third of that, a narrowband filter its bandwidth over 300 nm (7 nm when the name gives
none), U a twentieth (the twilight sky is blue, the sensor is not). Only the order matters for
scheduling, and the ramp measures the real level with a filter's first frame, so a factor of two
off costs nothing."""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

#: Relative sensitivity by family, against a clear filter.
CLEAR_NM = 300.0
BROADBAND = 1 / 3
ULTRAVIOLET = 1 / 20
NARROWBAND_NM = 7.0

_CLEAR = {"l", "lum", "luminance", "clear", "c", "cl", "none", "empty", "uvir", "uv/ir", "ir-cut",
          "ircut", "lpr", "open"}
_BROAD = {"r", "g", "b", "v", "i", "rc", "ic", "bessel", "red", "green", "blue", "sloan",
          "gp", "rp", "ip", "zp", "z", "y", "sdss", "johnson", "cousins", "visual"}
_UV = {"u", "up"}
_NARROW = {"ha", "h-a", "halpha", "h-alpha", "h_alpha", "hb", "hbeta", "h-beta", "oiii", "o3",
           "o-iii", "sii", "s2", "s-ii", "nii", "n2", "n-ii", "hei", "heii", "he", "narrowband"}
_WIDTH = re.compile(r"(\d+(?:\.\d+)?)\s*nm")


def _words(name: str) -> list[str]:
    cleaned = name.lower().replace("'", "p").replace("\u03b1", "alpha")
    return [w for w in re.split(r"[\s_:()\[\],;]+", cleaned) if w]


def prior_log_sensitivity(name: str | None) -> float | None:
    """ln of the filter's sensitivity relative to a clear filter, from its name; None when
    the name says nothing known ("Filter 5", "Slot 2")."""
    if not name:
        return None
    words = _words(name)
    width = _WIDTH.search(name.lower())
    joined = "".join(words)
    for w in words + [joined]:
        bare = w.replace("-", "") if w not in _NARROW else w
        if w in _NARROW or bare in _NARROW:
            nm = float(width.group(1)) if width else NARROWBAND_NM
            return math.log(max(nm, 0.5) / CLEAR_NM)
    for w in words:
        if w in _UV:
            return math.log(ULTRAVIOLET)
        if w in _BROAD:
            return math.log(BROADBAND)
        if w in _CLEAR:
            return 0.0
    return None


def ordering_levels(filters: Sequence[str], learned: Mapping[str, float]) -> dict[str, float]:
    """A comparable log sensitivity for each filter that has one: learned (from frames) where
    known, else the name's prior moved onto the learned scale through the filters that have
    both (through none: on the prior's own scale, when nothing is learned at all)."""
    prior = {f: p for f in filters if (p := prior_log_sensitivity(f)) is not None}
    both = [learned[f] - prior[f] for f in prior if f in learned]
    out = {f: learned[f] for f in filters if f in learned}
    if not out:
        return dict(prior)
    if both:
        shift = sorted(both)[len(both) // 2]
        for f, p in prior.items():
            out.setdefault(f, p + shift)
    return out
