"""Build one master frame from a list of files: check the inputs, combine them in a stream,
write a float32 FITS with the headers other tools match on and the list of sources.

Checks before any pixel is combined, each naming the file: unreadable or truncated files,
NaN pixels, all-zero frames, a type that differs from the one asked for (unless told to
ignore types), a header that lies about its type (a 'flat' as dark as a dark, a 'dark' lit
like a flat, a 'bias' with a long exposure), frames of different sizes, too few frames for
the method, and an existing output (unless forced)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from indical import __version__
from indical.atomic import atomic_file
from indical.calib.combine.engine import (DEFAULT_MEMORY_LIMIT, CombineInput, CombineResult,
                                          ShapeMismatch, combine_files, measure_level)
from indical.calib.combine.options import CombineOptions, TooFewFrames
from indical.calib.ingest import is_master_header
from indical.calib.rawio import open_raw
from indical.errors import FitsError, IndicalError
from indical.fits.keywords import (ExposureError, header_frame_type, header_to_meta,
                                   meta_flat_source, meta_to_header)
from indical.fits.header import Header, write_image
from indical.frame import FrameMeta, FrameType, cfa_planes

MASTER_IMAGETYP = {FrameType.BIAS: "Master Bias", FrameType.DARK: "Master Dark",
                   FrameType.DARKFLAT: "Master Dark Flat", FrameType.FLAT: "Master Flat"}
_BIAS_MAX_EXPOSURE_S = 1.0
#: BUNIT of master flats: empty, i.e. dimensionless (astropy's CCDData reads it so).
FLAT_BUNIT = ""
# Keywords never carried from the inputs into a master, even when all inputs agree: structure,
# commentary, and what describes one exposure rather than the configuration.
_NOT_CARRIED = {"SIMPLE", "BITPIX", "EXTEND", "BZERO", "BSCALE", "BLANK", "DATAMIN", "DATAMAX",
                "CHECKSUM", "DATASUM", "HISTORY", "COMMENT", "", "IMAGETYP", "FRAME", "FRAMETYP",
                "EXPSTART", "EXPEND", "LEVEL", "FILENAME", "CALIBRAT", "REJECTED", "END"}
_NOT_CARRIED_PREFIXES = ("NAXIS", "DATE", "TIME-", "MJD", "JD", "UT", "IMCMB")


class MasterError(IndicalError):
    """The inputs can't make a master; the message names the file(s) and what to do."""


@dataclass(frozen=True)
class Precal:
    """What is subtracted from each frame before combining (flats only): an image and/or a
    pedestal, and a description for the header and the library."""

    image: np.ndarray | None = None
    pedestal_adu: float = 0.0
    description: str = "none"
    reason: str = ""          # why this was chosen (a library choice), for header and library


#: How a colour (Bayer) master flat is normalised: each of the four CFA positions to mean 1
#: ("channel", the default), or all pixels by one factor ("overall", as mono flats are).
FLAT_NORMALISATIONS = ("channel", "overall")


@dataclass(frozen=True)
class MasterSpec:
    """One master to build. flat_normalisation: see FLAT_NORMALISATIONS (mono flats always
    take one overall factor)."""

    paths: Sequence[Path]
    frame_type: FrameType | None = None
    options: CombineOptions = field(default_factory=CombineOptions)
    precal: Precal = field(default_factory=Precal)
    ignore_type: bool = False
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT
    flat_normalisation: str = "channel"

    def __post_init__(self) -> None:
        if self.flat_normalisation not in FLAT_NORMALISATIONS:
            raise ValueError(f"flat normalisation must be one of "
                             f"{', '.join(FLAT_NORMALISATIONS)}, not {self.flat_normalisation!r}")


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    meta: FrameMeta
    width: int
    height: int
    level_adu: float
    cards: dict = field(default_factory=dict, compare=False)  # keyword -> (value, comment)


@dataclass
class MasterBuild:
    """A built master, not yet written: pixels, header and what went into it."""

    data: np.ndarray
    header: Header
    frame_type: FrameType
    meta: FrameMeta
    sources: list[SourceInfo]
    result: CombineResult
    precal: Precal


def survey(spec: MasterSpec) -> tuple[FrameType, list[SourceInfo]]:
    """Read headers and a sparse sample of every input; raise MasterError or FitsError on the
    first problem, naming the file."""
    if not spec.paths:
        raise MasterError("no input files given")
    infos: list[SourceInfo] = []
    header_types: list[FrameType | None] = []
    for path in (Path(p) for p in spec.paths):
        if not path.is_file():
            raise FitsError(path, "no such file")
        with open_raw(path) as image:
            if is_master_header(image.header):
                raise FitsError(path, f"is a master ({image.header.get('IMAGETYP')}), not a raw "
                                      "frame; leave it out")
            raw = image.raw
            if raw.dtype.kind == "f":
                bad = int(np.count_nonzero(~np.isfinite(raw)))
                if bad:
                    raise FitsError(path, f"{bad} pixels are NaN or infinite; remove the file "
                                          "or repair it before combining")
            level = measure_level(image, None, 0.0)
            if level == 0.0 and float(raw.max()) * image.bscale + image.bzero == 0.0 \
                    and float(raw.min()) * image.bscale + image.bzero == 0.0:
                raise FitsError(path, "every pixel is zero (a failed readout); leave it out")
            header_types.append(header_frame_type(image.header))
            kind = spec.frame_type if spec.ignore_type and spec.frame_type else header_types[-1]
            try:
                meta = header_to_meta(image.header, frame_type=kind or spec.frame_type)
            except ExposureError as exc:
                raise FitsError(path, str(exc)) from exc
            except ValueError as exc:
                raise FitsError(path, f"{exc}; give --type") from exc
            cards = {c.keyword: (c.value, c.comment) for c in image.header.cards
                     if c.keyword not in _NOT_CARRIED
                     and not c.keyword.startswith(_NOT_CARRIED_PREFIXES)}
            infos.append(SourceInfo(path, meta, image.width, image.height, level, cards))
    frame_type = _decide_type(spec, infos, header_types)
    infos = [SourceInfo(i.path, i.meta.replace(frame_type=frame_type), i.width, i.height,
                        i.level_adu, i.cards) for i in infos]
    _check_sizes(infos)
    _check_exposures(frame_type, infos)
    _check_flat_sources(frame_type, infos)
    _check_bayer_phases(frame_type, infos)
    _check_levels(frame_type, infos)
    try:
        spec.options.check(len(infos))
    except TooFewFrames as exc:
        raise MasterError(f"{exc} ({', '.join(i.path.name for i in infos)})") from None
    return frame_type, infos


def _decide_type(spec: MasterSpec, infos: list[SourceInfo],
                 header_types: list[FrameType | None]) -> FrameType:
    if spec.frame_type is not None:
        if not spec.ignore_type:
            for info, kind in zip(infos, header_types):
                if kind is not None and kind is not spec.frame_type:
                    raise FitsError(info.path, f"header says {kind.value}, not "
                                               f"{spec.frame_type.value} (use --ignore-type if "
                                               "the header is wrong)")
        return spec.frame_type
    kinds = Counter(i.meta.frame_type for i in infos)
    if len(kinds) > 1:
        listing = "; ".join(f"{k.value}: {', '.join(i.path.name for i in infos if i.meta.frame_type is k)}"
                            for k in kinds)
        raise MasterError(f"the files are of different types ({listing}); give --type or "
                          "combine them separately")
    kind = next(iter(kinds))
    if kind is FrameType.LIGHT:
        raise FitsError(infos[0].path, "these are light frames; masters are made from bias, "
                                       "dark, dark-flat or flat frames")
    return kind


def _check_sizes(infos: list[SourceInfo]) -> None:
    sizes: dict[tuple[int, int], list[str]] = {}
    for i in infos:
        sizes.setdefault((i.width, i.height), []).append(i.path.name)
    if len(sizes) > 1:
        lines = [f"{w}x{h}: {', '.join(names)}" for (w, h), names in sorted(sizes.items())]
        raise ShapeMismatch(infos[0].path.parent, "frames of different sizes can't be combined "
                            "(group them with --group size):\n  " + "\n  ".join(lines))


# Darks (and dark flats) whose exposures differ by more than this fraction are not one master;
# the same tolerance `--group exposure` splits them with.
EXPOSURE_REL_TOL = 0.02
_NAMES_SHOWN = 4


def _check_exposures(kind: FrameType, infos: list[SourceInfo]) -> None:
    """Refuse darks or dark flats of different exposures, listing each exposure's files: their
    dark current differs, and a mean of them matches no light or flat."""
    if kind not in (FrameType.DARK, FrameType.DARKFLAT):
        return
    runs: list[list[SourceInfo]] = []
    for i in sorted(infos, key=lambda i: (i.meta.exposure_s, i.path.name)):
        if runs and i.meta.exposure_s <= runs[-1][0].meta.exposure_s * (1 + EXPOSURE_REL_TOL) + 1e-9:
            runs[-1].append(i)
        else:
            runs.append([i])
    if len(runs) == 1:
        return

    def names(run: list[SourceInfo]) -> str:
        shown = ", ".join(i.path.name for i in run[:_NAMES_SHOWN])
        more = len(run) - _NAMES_SHOWN
        return shown + (f" and {more} more" if more > 0 else "")

    what = "darks" if kind is FrameType.DARK else "dark flats"
    listing = "; ".join(f"{run[0].meta.exposure_s:g} s: {names(run)}" for run in runs)
    raise MasterError(f"{what} of different exposures can't make one master ({listing}); "
                      "combine each exposure on its own, or use --group exposure")


def _check_flat_sources(kind: FrameType, infos: list[SourceInfo]) -> None:
    """Refuse panel and sky flats together: their illumination differs, and a master of both
    matches neither."""
    if kind is not FrameType.FLAT:
        return
    by_source: dict[str, list[str]] = {}
    for i in infos:
        source = meta_flat_source(i.meta)
        if source is not None:
            by_source.setdefault(source, []).append(i.path.name)
    if len(by_source) > 1:
        listing = "; ".join(f"{source}: {', '.join(names[:_NAMES_SHOWN])}"
                            + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")
                            for source, names in sorted(by_source.items()))
        raise MasterError(f"panel and sky flats can't make one master ({listing}); combine "
                          "each on its own, or use --group (it keeps them apart)")


def _check_levels(kind: FrameType, infos: list[SourceInfo]) -> None:
    """Catch headers that lie about the type, by exposure and by level against the others."""
    if kind is FrameType.BIAS:
        for i in infos:
            if i.meta.exposure_s > _BIAS_MAX_EXPOSURE_S:
                raise FitsError(i.path, f"header says bias but the exposure is "
                                        f"{i.meta.exposure_s:g} s; is it a dark?")
    if len(infos) < 3:
        return
    typical = statistics.median(i.level_adu for i in infos)
    for i in infos:
        if kind is FrameType.FLAT and i.level_adu < 0.25 * typical:
            raise FitsError(i.path, f"header says flat but its level {i.level_adu:.0f} ADU is far "
                                    f"below the others' {typical:.0f} ADU; is it a dark or bias?")
        if kind is not FrameType.FLAT and i.level_adu > 2.0 * typical + 100.0:
            raise FitsError(i.path, f"header says {kind.value} but its level {i.level_adu:.0f} ADU "
                                    f"is far above the others' {typical:.0f} ADU; was it lit?")


def combined_meta(kind: FrameType, infos: list[SourceInfo]) -> FrameMeta:
    """Metadata for the master: what the sources share, exposure and temperature averaged."""
    first = infos[0].meta
    temps = [i.meta.sensor_temp_c for i in infos if i.meta.sensor_temp_c is not None]
    setpoints = Counter(i.meta.setpoint_temp_c for i in infos if i.meta.setpoint_temp_c is not None)
    starts = [i.meta.start for i in infos if i.meta.start is not None]
    ends = [i.meta.end for i in infos if i.meta.end is not None]

    def shared(name: str):
        values = {getattr(i.meta, name) for i in infos}
        return values.pop() if len(values) == 1 else None

    return FrameMeta(
        frame_type=kind, exposure_s=sum(i.meta.exposure_s for i in infos) / len(infos),
        camera=shared("camera") or "", gain=shared("gain"), offset=shared("offset"),
        binning=first.binning, readout_mode=shared("readout_mode"), bit_depth=shared("bit_depth"),
        sensor_temp_c=(sum(temps) / len(temps)) if temps else None,
        setpoint_temp_c=setpoints.most_common(1)[0][0] if setpoints else None,
        filter=shared("filter") if kind is FrameType.FLAT else None,
        start=min(starts) if starts else None, end=max(ends) if ends else None,
        e_per_adu=shared("e_per_adu"), pixel_size_um=shared("pixel_size_um"),
        bayer_pattern=shared("bayer_pattern"), bayer_offset_x=shared("bayer_offset_x") or 0,
        bayer_offset_y=shared("bayer_offset_y") or 0,
        flat_source=(_shared_source(infos) if kind is FrameType.FLAT else None),
    )


def _shared_source(infos: list[SourceInfo]) -> str | None:
    sources = {meta_flat_source(i.meta) for i in infos}
    return sources.pop() if len(sources) == 1 else None


def master_header(meta: FrameMeta, result: CombineResult, infos: list[SourceInfo],
                  precal: Precal, *, now: datetime | None = None) -> Header:
    h = meta_to_header(meta, Header())
    h["IMAGETYP"] = (MASTER_IMAGETYP[meta.frame_type], "Type of image")
    if meta.setpoint_temp_c is None and meta.sensor_temp_c is not None:
        h["SET-TEMP"] = (round(meta.sensor_temp_c, 1), "[C] no set point recorded: mean CCD-TEMP")
    h["NCOMBINE"] = (len(infos), "Number of frames combined")
    h["COMBMETH"] = (result.options.method.value, "Combine method")
    short = {"sigma_low": "CMBSLOW", "sigma_high": "CMBSHIGH", "center": "CMBCENT",
             "maxiters": "CMBITERS", "clip": "CMBCLIP", "percentile_low": "CMBPLOW",
             "percentile_high": "CMBPHIGH"}
    for name, value in result.options.parameters().items():
        h[short[name]] = ("none" if value is None else value, f"Combine parameter {name}")
    if meta.frame_type is FrameType.FLAT:
        h["NORMALIZ"] = ("multiplicative", "Frames scaled to a common level, then mean 1"
                         if result.cell_scales is None else
                         "Each CFA position scaled to a common level")
        # what lit the flats (meta_to_header wrote FLATSRC), kept in the master itself:
        # sources may be moved or deleted, and sky flats are matched to lights by night
        # long descriptions (a master's file name) continue over CONTINUE cards, without comment
        h["PRECAL"] = ((precal.description, "Subtracted from each flat first")
                       if len(precal.description) <= 36 else precal.description)
        if precal.pedestal_adu:
            h["PEDESTAL"] = (precal.pedestal_adu, "[ADU] Pedestal subtracted")
        h["BUNIT"] = (FLAT_BUNIT, "dimensionless: normalised to mean 1")
        if precal.reason:
            h.add_history(f"precalibration chosen: {precal.reason}")
    else:
        h["BUNIT"] = ("ADU", "Pixel unit")
    _carry_shared_cards(h, infos)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    h["DATE"] = (now.isoformat(timespec="seconds").replace("+00:00", ""),
                 "UTC when this master was written")
    h["CREATOR"] = (f"indical {__version__}", "Software that built this master")
    for n, info in enumerate(infos, start=1):
        if n <= 999:  # IRAF imcombine convention; HISTORY below lists every source
            name = info.path.name
            h[f"IMCMB{n:03d}"] = (name, "Source frame") if len(name) <= 50 else name
    for info in infos:
        h.add_history(f"source {info.path}")
    return h


def _carry_shared_cards(h: Header, infos: list[SourceInfo]) -> None:
    """Keywords every input has with the same value (and type) go into the master as they were
    (XPIXSZ, TELESCOP, FOCALLEN, BAYERPAT...); GAIN and OFFSET keep the inputs' type (an
    integer stays an integer). Keywords the master sets itself are not overridden."""
    first = infos[0].cards
    for key, (value, comment) in first.items():
        if any(key not in i.cards or i.cards[key][0] != value
               or type(i.cards[key][0]) is not type(value) for i in infos[1:]):
            continue
        if key in h and key not in ("GAIN", "OFFSET"):
            continue
        if key == "FILTER" and "FILTER" not in h:
            continue   # darks and bias carry no filter, whatever their headers said
        h[key] = (value, comment or (h.comment(key) if key in h else ""))


def combine_job(spec: MasterSpec, kind: FrameType, infos: list[SourceInfo]) -> CombineInput:
    """What the combine engine is asked, once the inputs passed the survey."""
    precal = spec.precal if kind is FrameType.FLAT else Precal()
    known_levels = None if precal.image is not None else [i.level_adu - precal.pedestal_adu for i in infos]
    # flats normalised per channel are scaled per channel before rejection too: a sky flat's
    # colour changes through twilight, and one factor per frame would leave the frames'
    # channels apart by that change, which rejection would take for outliers
    per_channel = (kind is FrameType.FLAT and _flat_normalisation(
        combined_meta(kind, infos), infos, spec.flat_normalisation) == "CHANNEL")
    return CombineInput(paths=[i.path for i in infos], options=spec.options,
                        normalise=kind is FrameType.FLAT, precal_image=precal.image,
                        pedestal_adu=precal.pedestal_adu,
                        memory_limit_bytes=spec.memory_limit_bytes, rejection_map=True,
                        levels_adu=known_levels, per_cell_position=per_channel)


def finish_master(spec: MasterSpec, kind: FrameType, infos: list[SourceInfo],
                  result: CombineResult, *, now: datetime | None = None) -> MasterBuild:
    """The combined image made a master: flats normalised to mean 1, metadata and header
    (DATE is `now`, default the present)."""
    precal = spec.precal if kind is FrameType.FLAT else Precal()
    data = result.data
    meta = combined_meta(kind, infos)
    norm = None
    if kind is FrameType.FLAT:
        norm = _flat_normalisation(meta, infos, spec.flat_normalisation)
        for name, (dy, dx) in cfa_planes(meta.effective_bayer if norm == "CHANNEL" else None):
            plane = data[dy::2, dx::2] if name else data
            mean = float(np.mean(plane, dtype=np.float64))
            if not (math.isfinite(mean) and mean > 0):
                where = f" {name} channel at ({dx}, {dy})" if name else ""
                raise MasterError(f"the combined flat{where} has mean {mean}; check the "
                                  f"precalibration")
            plane /= np.float32(mean)
    header = master_header(meta, result, infos, precal, now=now)
    if norm is not None:
        header["FLATNORM"] = (norm, _FLATNORM_COMMENT[norm])
    return MasterBuild(data=data, header=header, frame_type=kind, meta=meta, sources=infos,
                       result=result, precal=precal)


_FLATNORM_COMMENT = {"CHANNEL": "each CFA position (2x2 cell) divided to mean 1",
                     "OVERALL": "all pixels divided by one factor to mean 1"}


def _flat_normalisation(meta: FrameMeta, infos: list[SourceInfo], asked: str) -> str:
    """CHANNEL or OVERALL for a master flat: CHANNEL only for a colour flat when asked (the
    survey made sure all flats share one pattern and phase)."""
    colour = meta.bayer_pattern is not None
    return "CHANNEL" if colour and asked == "channel" else "OVERALL"


def _check_bayer_phases(kind: FrameType, infos: list[SourceInfo]) -> None:
    """Flats of different Bayer patterns or phases (or mono among colour) are refused before
    any pixel is combined: a flat is divided pixel by pixel, each pixel by its own colour."""
    if kind is not FrameType.FLAT:
        return
    try:
        phases = {i.meta.effective_bayer for i in infos}
    except ValueError as exc:
        raise MasterError(f"{exc} (BAYERPAT of the flats); fix the headers") from None
    if len(phases) > 1:
        show = ", ".join(sorted(p or "mono" for p in phases))
        raise MasterError(f"the flats' Bayer patterns at pixel 0,0 differ ({show}): frames of "
                          f"two phases or a mono frame among colour ones can't be combined; "
                          f"split them by BAYERPAT, XBAYROFF and YBAYROFF")


def build_master(spec: MasterSpec, *, progress: Callable[[int, int], None] | None = None,
                 now: datetime | None = None) -> MasterBuild:
    """Check the inputs and combine them; nothing is written here."""
    kind, infos = survey(spec)
    result = combine_files(combine_job(spec, kind, infos), progress=progress)
    return finish_master(spec, kind, infos, result, now=now)


def write_master(build: MasterBuild, path: Path, *, overwrite: bool = False,
                 rejection_map: Path | None = None) -> Path:
    """Write the master (float32, no BZERO) atomically; optionally the rejection counts. The
    map is written first and removed again if the master can't be written, so a failure leaves
    neither file (nor a temporary one)."""
    header = build.header.copy()
    for key in ("BZERO", "BSCALE"):
        header.pop(key, None)
    map_written: Path | None = None
    try:
        if rejection_map is not None and build.result.rejected is not None:
            rh = Header()
            rh["IMAGETYP"] = ("Rejection Map", "Values rejected per pixel")
            rh["MASTER"] = (Path(path).name, "Master this map belongs to")
            existed = Path(rejection_map).exists()
            with atomic_file(Path(rejection_map), overwrite=overwrite) as fh:
                write_image(fh, build.result.rejected.astype(np.int16), rh)
            map_written = None if existed else Path(rejection_map)
        with atomic_file(Path(path), overwrite=overwrite) as fh:
            write_image(fh, build.data, header)
    except BaseException as exc:
        if map_written is not None:
            map_written.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise FitsError(exc.filename or path, "already exists; use --force to overwrite") \
                from None
        raise
    return Path(path)
