"""What a FITS header says about where a file comes from: the program that wrote it, whether it
combines frames (a master or stack of any program) and whether it was already calibrated.

Used by ingest (such files are not raw frames), master building (not inputs) and
`library import` (masters from elsewhere). Pure functions of a header (indical's or astropy's)."""

from __future__ import annotations


def _history(header) -> str:
    try:
        return " ".join(str(v) for v in header["HISTORY"])
    except KeyError:
        return ""


def program_of(header) -> str:
    """Which program wrote this header, as far as it says."""
    creator = " ".join(str(header.get(k, "")) for k in ("CREATOR", "PROGRAM", "SWCREATE",
                                                          "SOFTWARE", "ORIGIN"))
    history = _history(header)
    if "indical" in creator.lower():
        return "indical"
    if "siril" in creator.lower():
        return "Siril"
    if "pixinsight" in creator.lower() or "ImageIntegration" in history \
            or "ImageCalibration" in history:
        return "PixInsight"
    if "n.i.n.a" in creator.lower():
        return "N.I.N.A."
    if "ccdproc" in history.lower() or any(k in header for k in ("SUBBIAS", "SUBDARK", "FLATCOR")):
        return "ccdproc"
    return creator.strip() or "unknown"


def combines_frames(header) -> bool:
    """The header says this image is a combination of frames (a master or a stack)."""
    if str(header.get("IMAGETYP", "")).replace(" ", "").lower().startswith("master"):
        return True
    for key in ("STACKCNT", "NCOMBINE"):
        try:
            if int(header.get(key, 0)) > 1:
                return True
        except (TypeError, ValueError):
            pass
    history = _history(header)
    return "ImageIntegration" in history


def is_processed_by_another_program(header, *, float_data: bool) -> str | None:
    """Why a file that looks like a frame is not a raw one, or None: a stack or master of any
    program, a light calibrated by Siril (float data from PROGRAM 'Siril'), PixInsight
    (ImageCalibration) or ccdproc (SUBBIAS/SUBDARK/FLATCOR)."""
    if combines_frames(header):
        return f"a master or stack ({program_of(header)}), not a raw frame; add it with " \
               f"`indical library import`"
    program = program_of(header)
    history = _history(header)
    if program == "Siril" and float_data:
        return "already processed by Siril (32-bit float data), not a raw frame"
    if "ImageCalibration" in history or any(k in header for k in ("SUBBIAS", "SUBDARK",
                                                                   "FLATCOR")):
        return f"already calibrated ({program}), not a raw frame"
    if float_data and "BUNIT" in header:
        return ("floating-point data with BUNIT (written by astropy/ccdproc), not a raw frame; "
                "a master: add it with `indical library import`")
    return None
