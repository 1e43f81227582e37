"""Sensor model: electrons in, digital numbers out.

Bias, gain, read noise, dark current doubling every few degrees, hot and cold pixels, pixel
response non-uniformity (PRNU), full well, an ADC of 12, 14 or 16 bits, exposure timing jitter,
and optionally a CMOS readout mode that delivers raw 12-bit data below an exposure threshold and
internally stacked 16-bit data above it. A one-shot-colour sensor has a Bayer colour filter array
(models/cfa.py): each pixel receives its own colour's share of the light."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from indical.simulators.models.cfa import Cfa


@dataclass(frozen=True)
class SensorParams:
    width: int = 1024
    height: int = 768
    bit_depth: int = 16
    gain_e_per_adu: float = 1.0          # at gain setting 0
    read_noise_e: float = 3.0
    bias_adu: float = 500.0               # at offset setting 0
    full_well_e: float = 60000.0
    min_exposure_s: float = 0.001
    max_exposure_s: float = 3600.0
    pixel_size_um: float = 3.76
    dark_e_per_s: float = 0.05            # at dark_ref_temp_c
    dark_ref_temp_c: float = 0.0
    dark_doubling_c: float = 6.0
    hot_pixel_fraction: float = 2e-4
    hot_pixel_factor: float = 500.0       # hot pixels' dark current relative to normal ones
    cold_pixel_fraction: float = 1e-4
    cold_pixel_response: float = 0.2
    prnu: float = 0.01                    # 1-sigma relative pixel response variation
    jitter_s: float = 0.0005              # 1-sigma error of the real exposure time
    stack_threshold_s: float | None = None  # raw 12-bit below, stacked 16-bit at and above
    stack_count: int = 16
    left_justify: bool = False            # 12/14-bit data shifted to the top of 16 bits
    seed: int = 1
    bayer_pattern: str | None = None      # one-shot colour: RGGB, GRBG, GBRG, BGGR; None: mono
    bayer_offset_x: int = 0               # the pattern starts this many pixels in (0 or 1)
    bayer_offset_y: int = 0

    @property
    def cfa(self) -> Cfa | None:
        """The colour filter array, None on a mono sensor."""
        if self.bayer_pattern is None:
            return None
        return Cfa(self.bayer_pattern, self.bayer_offset_x, self.bayer_offset_y)

    def e_per_adu(self, gain_setting: float) -> float:
        """Gain settings in 0.1 dB steps, as many CMOS cameras count them."""
        return self.gain_e_per_adu / 10 ** (gain_setting / 200.0)

    def dark_rate(self, temp_c: float) -> float:
        """Dark current (e-/s/pixel) at a temperature: doubles every `dark_doubling_c`."""
        return self.dark_e_per_s * 2.0 ** ((temp_c - self.dark_ref_temp_c) / self.dark_doubling_c)

    def readout_mode(self, exposure_s: float) -> str:
        if self.stack_threshold_s is None:
            return "normal"
        return "stack16" if exposure_s >= self.stack_threshold_s else "raw12"

    def output_bits(self, exposure_s: float) -> int:
        """Bits of the data the camera delivers for this exposure."""
        if self.stack_threshold_s is not None:
            return 16 if exposure_s >= self.stack_threshold_s else 12
        return 16 if self.left_justify else self.bit_depth

    def adc_bits(self) -> int:
        return 12 if self.stack_threshold_s is not None else self.bit_depth


class Sensor:
    """Renders frames for one SensorParams; fixed-pattern maps are made once per binning."""

    def __init__(self, params: SensorParams) -> None:
        self.p = params
        self._binned: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @cached_property
    def _response_map(self) -> np.ndarray:
        """Relative response per pixel: PRNU around 1, cold pixels low."""
        p = self.p
        rng = np.random.default_rng([p.seed, 1])
        resp = 1.0 + p.prnu * rng.standard_normal((p.height, p.width), dtype=np.float32)
        cold = rng.random((p.height, p.width)) < p.cold_pixel_fraction
        resp[cold] = p.cold_pixel_response
        return resp.astype(np.float32)

    @cached_property
    def hot_pixel_mask(self) -> np.ndarray:
        p = self.p
        rng = np.random.default_rng([p.seed, 2])
        return rng.random((p.height, p.width)) < p.hot_pixel_fraction

    @cached_property
    def cold_pixel_mask(self) -> np.ndarray:
        return self._response_map < (1.0 - 5 * max(self.p.prnu, 1e-3))

    @cached_property
    def _dark_map(self) -> np.ndarray:
        dark = np.ones((self.p.height, self.p.width), dtype=np.float32)
        dark[self.hot_pixel_mask] = self.p.hot_pixel_factor
        return dark

    def maps(self, bx: int, by: int) -> tuple[np.ndarray, np.ndarray]:
        """(response, dark) maps summed over bins, cropped to whole bins."""
        key = (bx, by)
        if key not in self._binned:
            self._binned[key] = (bin_sum(self._response_map, bx, by), bin_sum(self._dark_map, bx, by))
        return self._binned[key]

    def render(self, flux_e_per_s: np.ndarray | float, exposure_s: float, *, temp_c: float,
               gain: float = 0.0, offset: float = 0.0, binning: tuple[int, int] = (1, 1),
               channel_flux: tuple[float, float, float] | None = None,
               rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Digitise one exposure. `flux_e_per_s` is the light reaching each unbinned pixel
        (already binned if it has the binned shape). On a colour sensor each pixel's filter
        passes its channel's share of it, `channel_flux` (r, g, b; None: white), before binning
        sums neighbouring pixels of all colours. Returns (uint16 data, real exposure)."""
        p = self.p
        bx, by = binning
        response, dark = self.maps(bx, by)
        real_t = max(0.0, exposure_s + p.jitter_s * float(rng.standard_normal()))
        cfa = p.cfa
        if cfa is not None and channel_flux is not None and (
                isinstance(flux_e_per_s, np.ndarray) or flux_e_per_s):
            if not isinstance(flux_e_per_s, np.ndarray):
                flux_e_per_s = np.full((p.height, p.width), flux_e_per_s, dtype=np.float32)
            h, w = flux_e_per_s.shape
            if (h, w) != (p.height, p.width):
                raise ValueError(f"a colour sensor needs the light on its {p.width}x{p.height} "
                                 f"unbinned pixels, got {w}x{h}")
            flux_e_per_s = flux_e_per_s * cfa.weights(h, w, channel_flux)
        if isinstance(flux_e_per_s, np.ndarray) and flux_e_per_s.shape != response.shape:
            flux_e_per_s = bin_sum(flux_e_per_s, bx, by) / (bx * by)
        # light per binned pixel: flux per unbinned pixel x response summed over the bin
        mean_e = np.multiply(response, np.float32(real_t), dtype=np.float32)
        mean_e *= flux_e_per_s
        mean_e += dark * np.float32(p.dark_rate(temp_c) * real_t)
        stacked = p.stack_threshold_s is not None and exposure_s >= p.stack_threshold_s
        n_reads = p.stack_count if stacked else 1
        variance = mean_e + np.float32(n_reads * p.read_noise_e ** 2)
        noise = rng.standard_normal(mean_e.shape, dtype=np.float32)
        noise *= np.sqrt(variance, dtype=np.float32)
        electrons = mean_e
        electrons += noise
        # Saturate at the full well; read noise may take a pixel below zero electrons, which
        # the bias absorbs and the ADC clips at 0.
        well = p.full_well_e * bx * by * (n_reads if stacked else 1)
        np.minimum(electrons, np.float32(well), out=electrons)
        e_per_adu = p.e_per_adu(gain)
        adu = electrons
        adu *= np.float32(1.0 / e_per_adu)
        adu += np.float32((p.bias_adu + offset) * n_reads)
        adc_max = (1 << p.adc_bits()) - 1
        np.clip(adu, 0.0, adc_max * n_reads, out=adu)
        out = np.rint(adu).astype(np.uint16)
        bits = p.output_bits(exposure_s)
        if p.left_justify and not stacked and bits == 16 and p.adc_bits() < 16:
            out <<= np.uint16(16 - p.adc_bits())
        return out, real_t


def bin_sum(a: np.ndarray, bx: int, by: int) -> np.ndarray:
    if bx == 1 and by == 1:
        return a
    h = (a.shape[0] // by) * by
    w = (a.shape[1] // bx) * bx
    return a[:h, :w].reshape(h // by, by, w // bx, bx).sum(axis=(1, 3), dtype=np.float32)
