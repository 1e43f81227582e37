"""Mapping between FrameMeta and FITS header keywords that other tools read.

Writing uses one dialect (the one INDI and most capture programs write); reading accepts the
dialects found in the wild (IMAGETYP variants, EXPTIME or EXPOSURE, GAIN or EGAIN, ...)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from indical.frame import Binning, FrameMeta, FrameType

IMAGETYP_WRITE = {
    FrameType.LIGHT: "Light Frame",
    FrameType.BIAS: "Bias Frame",
    FrameType.DARK: "Dark Frame",
    FrameType.FLAT: "Flat Field",
    FrameType.DARKFLAT: "Dark Flat",
}

# Lower-cased, spaces and punctuation removed -> frame type.
_IMAGETYP_READ = {
    "light": FrameType.LIGHT, "lightframe": FrameType.LIGHT, "object": FrameType.LIGHT,
    "science": FrameType.LIGHT,
    "bias": FrameType.BIAS, "biasframe": FrameType.BIAS, "offset": FrameType.BIAS,
    "zero": FrameType.BIAS,
    "dark": FrameType.DARK, "darkframe": FrameType.DARK,
    "flat": FrameType.FLAT, "flatframe": FrameType.FLAT, "flatfield": FrameType.FLAT,
    "skyflat": FrameType.FLAT, "domeflat": FrameType.FLAT, "twilightflat": FrameType.FLAT,
    "darkflat": FrameType.DARKFLAT, "flatdark": FrameType.DARKFLAT,
    "darkflatframe": FrameType.DARKFLAT,
}


def parse_imagetyp(value: str) -> FrameType | None:
    """The frame type an IMAGETYP value means, or None when it is not recognised.

    A leading 'master' is ignored, so 'Master Flat' reads as a flat."""
    key = "".join(ch for ch in str(value).lower() if ch.isalnum())
    if key.startswith("master"):
        key = key[len("master"):]
    return _IMAGETYP_READ.get(key)


def _iso(t: datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.isoformat(timespec="milliseconds")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).strip().rstrip("Z")
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t


if TYPE_CHECKING:
    from astropy.io import fits


def meta_to_header(meta: FrameMeta, header: Any = None) -> Any:
    """Header cards for a frame's metadata, added to the header given (an astropy Header or
    indical's own `indical.fits.header.Header`), or to a new astropy Header."""
    if header is None:
        from astropy.io import fits
        header = fits.Header()
    h = header

    def put(key: str, value: Any, comment: str) -> None:
        if value is not None and value != "":
            h[key] = (value, comment)

    put("IMAGETYP", IMAGETYP_WRITE[meta.frame_type], "Type of image")
    put("EXPTIME", float(meta.exposure_s), "[s] Exposure time")
    put("EXPOSURE", float(meta.exposure_s), "[s] Exposure time")
    put("INSTRUME", meta.camera, "Camera")
    put("GAIN", meta.gain, "Camera gain setting")
    put("OFFSET", meta.offset, "Camera offset setting")
    put("XBINNING", meta.binning.x, "Binning factor in x")
    put("YBINNING", meta.binning.y, "Binning factor in y")
    put("READOUTM", meta.readout_mode, "Readout mode")
    put("BITDEPTH", meta.bit_depth, "Bits per pixel the camera delivers")
    put("CCD-TEMP", None if meta.sensor_temp_c is None else round(meta.sensor_temp_c, 2),
        "[C] Sensor temperature")
    put("SET-TEMP", meta.setpoint_temp_c, "[C] Sensor temperature set point")
    put("FILTER", meta.filter, "Filter name")
    put("DATE-OBS", _iso(meta.start) if meta.start else None, "UTC start of exposure")
    put("DATE-END", _iso(meta.end) if meta.end else None, "UTC end of exposure")
    put("PANELBRT", meta.panel_brightness, "Flat panel brightness setting")
    put("SUNALT", None if meta.sun_altitude_deg is None else round(meta.sun_altitude_deg, 3),
        "[deg] Sun altitude at mid-exposure")
    put("LEVEL", None if meta.level_adu is None else round(float(meta.level_adu), 2),
        "[ADU] Measured flat level above bias")
    put("EGAIN", meta.e_per_adu, "[e-/ADU] Electrons per ADU")
    if meta.pixel_size_um is not None:
        put("XPIXSZ", meta.pixel_size_um * meta.binning.x, "[um] Pixel width incl. binning")
        put("YPIXSZ", meta.pixel_size_um * meta.binning.y, "[um] Pixel height incl. binning")
    if meta.bayer_pattern is not None:
        put("BAYERPAT", meta.bayer_pattern, "Bayer colour filter pattern")
        put("XBAYROFF", meta.bayer_offset_x, "Bayer pattern x offset")
        put("YBAYROFF", meta.bayer_offset_y, "Bayer pattern y offset")
    put("SITELAT", meta.site_lat_deg, "[deg] Site latitude")
    put("SITELONG", meta.site_lon_deg, "[deg] Site longitude, east positive")
    if meta.frame_type is FrameType.FLAT:
        put("FLATSRC", meta_flat_source(meta), "What lit this flat: PANEL or SKY")
    for key, value in meta.extra.items():
        put(key, value, "")
    return h


def meta_flat_source(meta: FrameMeta) -> str | None:
    """PANEL or SKY for a flat: as recorded, else from the sun's altitude or the panel's
    brightness it was taken with."""
    if meta.flat_source is not None:
        return meta.flat_source
    if meta.sun_altitude_deg is not None:
        return "SKY"
    if meta.panel_brightness is not None:
        return "PANEL"
    return None


# Other programs' keywords that tell what lit a flat: the sun's altitude (twilight sky) or a
# panel's brightness setting; and IMAGETYP words.
_SUN_KEYS = ("SUNALT", "SUN-ALT", "SUN_ALT", "SUNELEV", "SUN-ELEV", "SOLALT", "SUNALTIT")
_PANEL_KEYS = ("PANELBRT", "PANELBRI", "FLATBRT", "FLATPANL", "LIGHTBOX", "LBRIGHT", "BRIGHTNS",
               "FLATLEV")
_SOURCE_WORDS = {"PANEL": "PANEL", "SKY": "SKY", "TWILIGHT": "SKY", "DUSK": "SKY", "DAWN": "SKY",
                 "DOME": "PANEL", "SCREEN": "PANEL", "LIGHTBOX": "PANEL", "FLATPANEL": "PANEL"}


def header_flat_source(header: Mapping[str, Any]) -> str | None:
    """PANEL or SKY for a flat's header: FLATSRC (as indical writes it), else inferred from
    other programs' keywords (sun altitude: SKY; panel brightness: PANEL) or IMAGETYP words
    ('Sky Flat', 'Twilight Flat', 'Dome Flat'); None when nothing says."""
    recorded = _text(header, "FLATSRC")
    if recorded is not None:
        word = "".join(ch for ch in recorded.upper() if ch.isalpha())
        if word in _SOURCE_WORDS:
            return _SOURCE_WORDS[word]
    if any(_number(header, key) is not None for key in _SUN_KEYS):
        return "SKY"
    if any(_number(header, key) is not None for key in _PANEL_KEYS):
        return "PANEL"
    for key in ("IMAGETYP", "FRAMETYP", "OBJECT"):
        text = str(header.get(key, "")).upper()
        for word, source in _SOURCE_WORDS.items():
            if word in text:
                return source
    return None


def _number(header: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        if key in header:
            try:
                return float(header[key])
            except (TypeError, ValueError):
                continue
    return None


def _int(header: Mapping[str, Any], *keys: str) -> int | None:
    value = _number(header, *keys)
    return None if value is None else int(round(value))


def header_frame_type(header: Mapping[str, Any]) -> FrameType | None:
    for key in ("IMAGETYP", "FRAMETYP", "FRAME", "OBSTYPE"):
        if key in header:
            kind = parse_imagetyp(header[key])
            if kind is not None:
                return kind
    return None


def _text(header: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = header.get(key)
        if value not in (None, ""):
            text = str(value).strip()
            if text:
                return text
    return None


def _binning(header: Mapping[str, Any]) -> Binning:
    """XBINNING/YBINNING, or BINNING '2x2', or CCDSUM '2 2' (IRAF)."""
    x, y = _int(header, "XBINNING", "BINX"), _int(header, "YBINNING", "BINY")
    if x is None and y is None:
        for key in ("BINNING", "CCDSUM"):
            text = _text(header, key)
            if text:
                parts = text.lower().replace("x", " ").split()
                try:
                    if len(parts) == 2:
                        return Binning(int(parts[0]), int(parts[1]))
                    if len(parts) == 1:
                        return Binning(int(parts[0]), int(parts[0]))
                except ValueError:
                    pass
    return Binning(x or 1, y or x or 1)


def _bayer(header: Mapping[str, Any]) -> str | None:
    """BAYERPAT (or COLORTYP), upper-cased; None when absent or saying mono ('NONE', 'MONO').
    An unknown pattern is kept as written, for the error that names it when it is used."""
    text = _text(header, "BAYERPAT", "COLORTYP")
    if text is None or text.upper() in ("NONE", "MONO", "MONOCHROME", "FALSE", "N/A"):
        return None
    return text.upper()


class ExposureError(ValueError):
    """A header's exposure time is missing, not a number, negative, or given twice with two
    values: the frame can't be matched or combined by exposure."""


# Two exposure keywords in one header may differ by rounding, not more.
_EXPOSURE_AGREE_REL = 1e-3


def header_exposure(header: Mapping[str, Any], kind: FrameType) -> float:
    """The exposure time in seconds from EXPTIME or EXPOSURE.

    Raises ExposureError saying what is wrong: missing (allowed only for bias frames, which
    are 0 s by definition), not a number, not finite, negative, or EXPTIME and EXPOSURE
    disagreeing."""
    values: list[tuple[str, float]] = []
    for key in ("EXPTIME", "EXPOSURE"):
        if key not in header or header[key] is None or header[key] == "":
            continue
        raw = header[key]
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ExposureError(f"{key} = {raw!r} is not a number; fix the header") from None
        if isinstance(raw, bool) or value != value or value in (float("inf"), float("-inf")):
            raise ExposureError(f"{key} = {raw!r} is not a number; fix the header")
        if value < 0:
            raise ExposureError(f"{key} = {raw!r} is negative; fix the header")
        values.append((key, value))
    if not values:
        if kind is FrameType.BIAS:
            return 0.0
        raise ExposureError("no exposure time (EXPTIME or EXPOSURE) in the header; add it "
                            "(the frame can't be matched without it)")
    (k1, v1), *rest = values
    for k2, v2 in rest:
        if abs(v1 - v2) > _EXPOSURE_AGREE_REL * max(v1, v2):
            raise ExposureError(f"{k1} = {v1:g} but {k2} = {v2:g}; fix the header so they agree")
    return v1


def header_to_meta(header: Mapping[str, Any], *, frame_type: FrameType | None = None) -> FrameMeta:
    """FrameMeta from a header in any of the common dialects.

    Raises ValueError when the frame type can't be determined and none was given, and
    ExposureError (a ValueError) when the exposure time is missing or wrong."""
    kind = frame_type or header_frame_type(header)
    if kind is None:
        raise ValueError(f"unknown frame type (IMAGETYP = {header.get('IMAGETYP')!r})")
    exposure = header_exposure(header, kind)
    gain = _number(header, "GAIN")
    e_per_adu = _number(header, "EGAIN")
    if gain is None and "GAIN" not in header and e_per_adu is None:
        gain = None
    filt = header.get("FILTER")
    return FrameMeta(
        frame_type=kind,
        exposure_s=exposure,
        camera=_text(header, "INSTRUME", "CAMERA", "CCDNAME") or "",
        gain=gain,
        offset=_number(header, "OFFSET", "BLKLEVEL", "BLACKLEV"),
        binning=_binning(header),
        readout_mode=_text(header, "READOUTM", "READMODE", "READOUT", "QHYMODE"),
        bit_depth=_int(header, "BITDEPTH"),
        sensor_temp_c=_number(header, "CCD-TEMP", "CCD_TEMP", "CCDTEMP", "TEMPERAT", "SENSTEMP"),
        setpoint_temp_c=_number(header, "SET-TEMP", "SET_TEMP"),
        filter=(str(filt).strip() if filt not in (None, "") else None),
        start=_parse_time(header.get("DATE-OBS")),
        end=_parse_time(header.get("DATE-END")),
        panel_brightness=_int(header, "PANELBRT"),
        sun_altitude_deg=_number(header, "SUNALT"),
        level_adu=_number(header, "LEVEL"),
        e_per_adu=e_per_adu,
        bayer_pattern=_bayer(header),
        bayer_offset_x=_int(header, "XBAYROFF", "BAYOFFX") or 0,
        bayer_offset_y=_int(header, "YBAYROFF", "BAYOFFY") or 0,
        site_lat_deg=_number(header, "SITELAT"),
        site_lon_deg=_number(header, "SITELONG"),
        flat_source=header_flat_source(header) if kind is FrameType.FLAT else None,
    )
