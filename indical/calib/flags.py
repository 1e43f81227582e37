"""Pixel flags: the bits of a bad pixel map and of the FLAGS extension beside a calibrated light.

One word, one bit, in both places: a bad pixel map holds HOT, COLD and DEAD; calibration adds
FLAT_FLOOR and CORRECTED to the same bits. Every file written says what its bits mean in
FLAGBITn keywords (bit n has the value 2**(n-1)), so files written with other values stay
readable: calibrated lights written before this module existed carry FLAGBIT1 'flat below
floor', FLAGBIT2 'hot pixel', FLAGBIT3 'cold or dead pixel', FLAGBIT4 'replaced from
neighbours'."""

from __future__ import annotations

import enum

import numpy as np


class PixelFlag(enum.IntFlag):
    """Why a pixel is not to be trusted (uint8 images of these bits)."""

    HOT = 1          # above the master dark's level (bad pixel map)
    COLD = 2         # answers with too little of its neighbours' light (bad pixel map)
    DEAD = 4         # answers with almost none (bad pixel map)
    FLAT_FLOOR = 8   # the flat was below the floor here: the value is not trustworthy
    CORRECTED = 16   # replaced from its neighbours


#: The bits a bad pixel map may hold.
BAD_PIXEL = PixelFlag.HOT | PixelFlag.COLD | PixelFlag.DEAD

#: What each bit means, as written to FLAGBITn keywords.
MEANING = {
    PixelFlag.HOT: "hot pixel",
    PixelFlag.COLD: "cold pixel",
    PixelFlag.DEAD: "dead pixel",
    PixelFlag.FLAT_FLOOR: "flat below floor",
    PixelFlag.CORRECTED: "replaced from neighbours",
}


def flag_keywords(flags: PixelFlag | None = None) -> list[tuple[str, str]]:
    """(FLAGBITn, meaning) for each bit in `flags` (default: all), n counted from 1 for the
    value 1."""
    return [(f"FLAGBIT{flag.bit_length()}", MEANING[flag]) for flag in PixelFlag
            if flags is None or flag & flags]


def from_bad_pixel_map(bad_pixels: np.ndarray) -> np.ndarray:
    """The flags a bad pixel map puts on every light (uint8): its HOT / COLD / DEAD bits, or HOT
    for each True pixel of a bool mask."""
    b = np.asarray(bad_pixels)
    if b.dtype == bool:
        return np.where(b, np.uint8(PixelFlag.HOT), np.uint8(0))
    return (b & np.uint8(BAD_PIXEL)).astype(np.uint8, copy=False)
