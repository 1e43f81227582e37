"""Calibrating light files: read each light once (memory-mapped), pick its masters, apply them,
write the result beside it and say what happened. Lights run on a pool of threads (the
arithmetic kernel, numpy, hashing and file I/O release the GIL), so both cores of a Raspberry Pi
can work."""

from __future__ import annotations

import dataclasses

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from astropy.io import fits

from indical.calib.apply import (ApplyOptions, CalibratedLight, CalibrationInputError, DarkMode,
                                 PreparedMasters, apply_masters, prepare_masters, stored_shift)
from indical.calib.apply_fast import apply_masters_be16
from indical.calib.bpm import correct_from_neighbours
from indical.calib.catalogue import MasterCatalogue
from indical.calib.checks import calibration_warnings
from indical.calib.config import CameraConfig
from indical.calib.flags import BAD_PIXEL, PixelFlag
from indical.calib.given_masters import GivenMasters, choose_given
from indical.calib.ingest import FrameRecord, file_sha256
from indical.calib.match import LightInfo, MasterChoice, MatchRules, choose_masters
from indical.calib.output import (calibrated_header, is_calibrated_output, output_complete,
                                  output_path, write_calibrated)
from indical.calib.provenance import is_processed_by_another_program
from indical.calib.status import LightStatus, Status
from indical.errors import FitsError, describe_os_error
from indical.fits.keywords import ExposureError, header_to_meta
from indical.frame import FrameMeta, FrameType
from indical.sinks import night_of


@dataclass(frozen=True)
class CalibrateOptions:
    """out_dir: where outputs go (default: a `calibrated` folder beside each light).
    ccd: bias + dark current scaled by exposure instead of a dark of the same exposure.
    bit_depth_output: write integers clipped to the camera's bit depth (header BITDEPTH, or
    `bit_depth`) instead of float32. bad_pixels: 'flag' marks pixels of the bad pixel map in
    the FLAGS extension, 'correct' also replaces them from their neighbours, 'off' ignores it.
    sync_outputs: fsync each output before recording it (outputs can always be made again from
    the light and masters, so by default they are only renamed into place atomically).
    assume_light: files whose header does not say what they are count as lights.
    given: masters named by the user (calibrate --bias/--dark/--flat/--bpm) instead of the
    library's; checked like library matches, refused on a mismatch unless allow_mismatch."""

    out_dir: Path | None = None
    ccd: bool = False
    ccd_cameras: frozenset[str] = frozenset()   # cameras the library says are CCDs
    rules: MatchRules = MatchRules()
    apply: ApplyOptions = ApplyOptions()
    bit_depth_output: bool = False
    bit_depth: int | None = None
    bad_pixels: str = "flag"
    force: bool = False
    workers: int = 2
    sync_outputs: bool = False
    assume_light: bool = False
    given: GivenMasters | None = None
    allow_mismatch: bool = False

    def __post_init__(self) -> None:
        if self.bad_pixels not in ("off", "flag", "correct"):
            raise ValueError(f"bad_pixels must be off, flag or correct, not {self.bad_pixels!r}")


@dataclass
class LightOutcome:
    """What happened to one light. status None: skipped (not a light, or already done)."""

    path: Path
    status: Status | None
    message: str = ""
    output: Path | None = None
    warnings: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    choice: MasterChoice | None = None
    meta: FrameMeta | None = None
    record: object | None = None   # the library FrameRecord for the light
    night: str | None = None

    def status_row(self) -> LightStatus:
        return LightStatus(path=str(self.path), status=self.status, reason=self.message,
                           missing=self.missing, warnings=self.warnings,
                           output=None if self.output is None else str(self.output),
                           night=self.night,
                           frame_id=getattr(self.record, "id", None))


def physical_pixels(image) -> np.ndarray:
    """A RawImage's values as float32 (BZERO applied in the pass that converts)."""
    if image.bscale == 1.0:
        data = np.empty(image.raw.shape, dtype=np.float32)
        np.add(image.raw, np.float32(image.bzero), out=data, casting="unsafe")
        return data
    return image.rows(0, image.height, np.float32)


def light_info(meta: FrameMeta, width: int, height: int) -> LightInfo:
    return LightInfo(config=CameraConfig.from_meta(meta, width, height),
                     exposure_s=meta.exposure_s, filter=meta.filter, time=meta.start)


class Calibrator:
    """Calibrates single lights against a catalogue of masters; prepared master sets are cached
    (a few, least recently used) because consecutive lights mostly share them."""

    def __init__(self, catalogue: MasterCatalogue, options: CalibrateOptions = CalibrateOptions(),
                 *, now: datetime | None = None) -> None:
        self.catalogue = catalogue
        self.options = options
        self.now = now or datetime.now(timezone.utc)
        self._prepared: OrderedDict[tuple, PreparedMasters] = OrderedDict()
        self._lock = threading.Lock()
        self._gates: dict[tuple, threading.Lock] = {}

    def _prepare(self, choice: MasterChoice, shape: tuple[int, int], ccd: bool) -> PreparedMasters:
        key = (ccd, *((m.kind.value, m.id) for m in choice.used))
        with self._lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._prepared:
                    return self._prepared[key]
            o = self.options
            px = self.catalogue.pixels
            use_bpm = choice.bpm is not None and o.bad_pixels != "off"
            prepared = prepare_masters(
                shape, mode=DarkMode.CCD if ccd else DarkMode.CMOS,
                bias=px(choice.bias) if choice.bias else None,
                dark=px(choice.dark) if choice.dark else None,
                dark_exposure_s=choice.dark.exposure_s if choice.dark else None,
                flat=px(choice.flat) if choice.flat else None,
                bad_pixels=px(choice.bpm).astype(np.uint8) if use_bpm else None,
                flat_bayer=flat_channels(choice.flat), options=o.apply)
            with self._lock:
                self._prepared[key] = prepared
                while len(self._prepared) > 3:
                    self._prepared.popitem(last=False)
            return prepared

    def calibrate(self, path: Path, *, overwrite_output: bool = False) -> LightOutcome:
        """Calibrate one light file; never raises for a bad light, says why in the outcome."""
        from indical.calib.rawio import open_raw
        path = Path(path)
        if not path.is_file():
            return LightOutcome(path, Status.FAILED, "no such file")
        try:
            with open_raw(path) as image:  # memory-mapped: each pixel is read once
                return self._calibrate_image(path, image, overwrite_output)
        except FitsError as exc:
            return LightOutcome(path, Status.FAILED, exc.problem)

    def _calibrate_image(self, path: Path, image, overwrite_output: bool) -> LightOutcome:
        header = image.header
        if is_calibrated_output(header):
            return LightOutcome(path, None, "already a calibrated frame (written by indical "
                                            "calibrate); give the raw light instead")
        processed = is_processed_by_another_program(header,
                                                    float_data=image.raw.dtype.kind == "f")
        if processed:
            return LightOutcome(path, None, f"{processed}; give the raw light instead")
        try:
            meta = header_to_meta(header)
        except ExposureError as exc:
            return LightOutcome(path, Status.FAILED, str(exc))
        except ValueError as exc:
            if not self.options.assume_light:
                return LightOutcome(path, Status.FAILED, f"no usable header: {exc}; if it is a "
                                                         f"light, say so with --assume-light")
            try:
                meta = header_to_meta(header, frame_type=FrameType.LIGHT)
            except ExposureError as exc2:
                return LightOutcome(path, Status.FAILED, str(exc2))
        if meta.frame_type is not FrameType.LIGHT:
            return LightOutcome(path, None, f"not a light frame ({meta.frame_type.value})")
        height, width = image.height, image.width
        light = light_info(meta, width, height)
        night = night_of(meta.start, meta.site_lon_deg) if meta.start else None
        sample = image.raw[::16, ::16].astype(np.float32) * np.float32(image.bscale) \
            + np.float32(image.bzero)   # every 256th pixel: statistics, stored bit depth
        record = _frame_record(path, image, meta, sample)
        given_warnings: list[str] = []
        ccd = self.options.ccd or meta.camera in self.options.ccd_cameras
        if self.options.given is not None:
            choice, refusal, given_warnings = choose_given(
                light, self.options.given, self.options.rules, ccd=ccd,
                allow_mismatch=self.options.allow_mismatch)
            if choice is None:
                return LightOutcome(path, Status.FAILED, refusal, warnings=tuple(given_warnings),
                                    meta=meta, record=record, night=night)
        else:
            choice = choose_masters(light, self.catalogue.infos, ccd=ccd,
                                    rules=self.options.rules, now=self.now)
        base = dict(meta=meta, record=record, night=night, choice=choice)
        required = [m for m in choice.missing if "flat for filter" not in m]
        if required or not choice.used:
            return LightOutcome(path, Status.NO_MASTERS,
                                "no matching " + ", no ".join(choice.missing),
                                missing=choice.missing, **base)
        correct = self.options.bad_pixels == "correct" and choice.bpm is not None
        try:
            prepared = self._prepare(choice, (height, width), ccd)
            if image.raw.dtype == np.dtype(">i2") and image.bscale == 1.0 and not correct:
                result = apply_masters_be16(image.raw, image.bzero, meta.exposure_s, prepared)
            else:
                result = apply_masters(physical_pixels(image), meta.exposure_s, prepared,
                                       in_place=True, big_endian=not correct)
        except (CalibrationInputError, FitsError) as exc:
            return LightOutcome(path, Status.FAILED, str(exc), missing=choice.missing, **base)
        if correct and prepared.flags is not None:
            result = _correct(result, meta)
        negative = result.negative_warning(self.options.apply)
        if self.options.given is not None:   # the user's choice: checked above, no expiry
            warnings = given_warnings + ([negative] if negative else [])
        else:
            warnings = calibration_warnings(light, choice, self.now, negative)
        try:
            out = output_path(path, self.options.out_dir)
            if out.exists() and not overwrite_output and not _ours(out):
                raise FitsError(out, "exists and is not an indical output; move it or choose "
                                     "another -o")
            header = calibrated_header(header, choice.used, dark_scaled=ccd,
                                       light_exposure_s=meta.exposure_s, warnings=warnings,
                                       now=self.now)
            bits = (self.options.bit_depth or meta.bit_depth or 16) \
                if self.options.bit_depth_output else None
            scale = stored_shift(float(sample.max()) if sample.size else 0.0, bits) \
                if bits else 1.0
            write_calibrated(out, result, header, bit_depth=bits, scale=scale,
                             sync=self.options.sync_outputs)
        except OSError as exc:
            return LightOutcome(path, Status.FAILED,
                                f"output not written: {describe_os_error(exc, out)}",
                                missing=choice.missing, **base)
        except FitsError as exc:
            return LightOutcome(path, Status.FAILED, f"output not written: {exc}",
                                missing=choice.missing, **base)
        message = "calibrated with " + ", ".join(m.describe() for m in choice.used)
        return LightOutcome(path, Status.CALIBRATED, message, output=out,
                            warnings=tuple(warnings), missing=choice.missing, **base)

    def run(self, paths: Iterable[Path]) -> Iterator[LightOutcome]:
        """Calibrate many lights on the worker pool; outcomes come back in input order."""
        paths = list(paths)
        if self.options.workers <= 1 or len(paths) <= 1:
            for p in paths:
                yield self.calibrate(p)
            return
        with ThreadPoolExecutor(self.options.workers, thread_name_prefix="calibrate") as pool:
            # a bounded window of lights in flight keeps memory at a few frames
            window = 2 * self.options.workers
            pending = []
            try:
                for p in paths:
                    pending.append(pool.submit(self.calibrate, p))
                    if len(pending) >= window:
                        yield pending.pop(0).result()
                while pending:
                    yield pending.pop(0).result()
            except BaseException:
                # Ctrl-C or a caller that stops early: lights not started are not started;
                # the few in flight finish (each output is renamed into place whole)
                for f in pending:
                    f.cancel()
                raise


def _ours(path: Path) -> bool:
    try:
        return is_calibrated_output(fits.getheader(path))
    except (OSError, ValueError):
        return False


def flat_channels(flat) -> str | None:
    """The Bayer pattern whose CFA planes a master flat (a MasterInfo) is normalised by one at a
    time: its own, unless it is mono or its header says FLATNORM = 'OVERALL' (one factor)."""
    if flat is None or flat.config.bayer_pattern is None:
        return None
    from indical.calib.rawio import open_raw
    with open_raw(flat.path) as image:     # FitsError naming the file when it can't be read
        norm = str(image.header.get("FLATNORM", "CHANNEL")).strip().upper()
    return None if norm == "OVERALL" else flat.config.bayer_pattern


def _correct(result: CalibratedLight, meta: FrameMeta) -> CalibratedLight:
    bad = (result.flags & np.uint8(BAD_PIXEL)) != 0
    step = 2 if meta.bayer_pattern else 1   # same-colour neighbours on a Bayer sensor
    data = correct_from_neighbours(result.data, bad, step=step)
    flags = result.flags | np.where(bad, np.uint8(PixelFlag.CORRECTED), np.uint8(0))
    return CalibratedLight(data, flags, result.negative_fraction)


def _frame_record(path: Path, image, meta: FrameMeta, sample: np.ndarray):
    """The library's record of the light: its hash, and median and MAD of a sparse sample."""
    median = float(np.median(sample)) if sample.size else float("nan")
    mad = float(np.median(np.abs(sample - median))) if sample.size else float("nan")
    return FrameRecord(path=str(Path(path).resolve()), sha256=file_sha256(path), meta=meta,
                       width=image.width, height=image.height, median_adu=median, mad_adu=mad)


@dataclass
class RunSummary:
    outcomes: list[LightOutcome] = field(default_factory=list)
    already: list[Path] = field(default_factory=list)

    def count(self, status: Status | None) -> int:
        return sum(1 for o in self.outcomes if o.status is status)


def light_paths(paths: Iterable[Path], out_dir: Path | None = None) -> list[Path]:
    """FITS files named or found in folders; outputs (`calibrated` folders, the -o folder) are
    not searched."""
    from indical.calib.ingest import is_fits_name
    skip = {Path(out_dir).resolve()} if out_dir is not None else set()
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if not q.is_file() or not is_fits_name(q):
                    continue
                parents = {a.resolve() for a in q.parents}
                if "calibrated" in q.relative_to(p).parts[:-1] or parents & skip:
                    continue
                found.append(q)
        else:
            found.append(p)
    return found


def calibrate_paths(library, store, paths: Iterable[Path], options: CalibrateOptions,
                    *, catalogue: MasterCatalogue | None = None, now: datetime | None = None,
                    progress: Callable[[LightOutcome], None] | None = None,
                    cluster=None) -> RunSummary:
    """Calibrate lights and record each outcome: the light indexed in `library` (a
    CalibrationLibrary), its status in `store` (a StatusStore). Lights calibrated before with
    masters still current are skipped unless options.force. With `cluster` (an
    indical.calib.cluster.Cluster), each light is a task on its workers; the outcomes come back
    here, in the same order, and are recorded as in a local run."""
    from indical.calib.library import LibraryError
    catalogue = catalogue or MasterCatalogue.from_library(library, extra=store.bad_pixel_maps())
    summary = RunSummary()
    todo: list[Path] = []
    for p in light_paths(paths, options.out_dir):
        resolved = Path(p).resolve()
        known = store.get(str(resolved))
        if (not options.force and known is not None and known.status is Status.CALIBRATED
                and not known.needs_recal and known.output and output_complete(Path(known.output))
                and Path(known.output) == output_path(resolved, options.out_dir)):
            summary.already.append(resolved)
            continue
        todo.append(resolved)
    sensors = library.sensors() if hasattr(library, "sensors") else {}
    ccds = frozenset(c for c, s in sensors.items() if s == "ccd")
    if ccds:
        options = dataclasses.replace(options, ccd_cameras=options.ccd_cameras | ccds)
    calibrator = Calibrator(catalogue, options, now=now)
    outcomes = (calibrator.run(todo) if cluster is None else
                cluster.calibrate(catalogue.infos, options, calibrator.now, todo))
    for outcome in outcomes:
        if outcome.status is not None:
            if outcome.record is not None:
                try:
                    stored, _ = library.add_frame(outcome.record)
                    outcome.record = stored
                except LibraryError as exc:  # e.g. the light changed since it was indexed
                    outcome.warnings = outcome.warnings + (f"not indexed in the library: {exc}",)
            store.record(outcome.status_row(),
                         outcome.choice.used if outcome.status is Status.CALIBRATED else ())
        summary.outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return summary
