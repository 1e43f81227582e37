"""Masters named on the command line (`indical calibrate --bias/--dark/--flat/--bpm FILE`):
read once, checked against each light with the same rules as library matching.

Size, binning and the Bayer pattern at pixel (0, 0) that differ make a master unusable: always
refused (but a bias, dark or bad pixel map that records no BAYERPAT, given for a colour light, is
refused unless allowed: other programs may leave it out). Camera, readout mode, gain, offset,
filter (flats), exposure (CMOS darks) and temperature (bias, darks) that differ are
refused with the reason, or only warned about with `allow_mismatch`. A value the master or the
light does not record can't be checked: a warning says which."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from indical.calib.config import CameraConfig, bayer_mismatch
from indical.calib.master_files import MasterFile, read_master_file
from indical.calib.match import LightInfo, MasterChoice, MasterInfo, MasterKind, MatchRules
from indical.errors import FitsError


@dataclass(frozen=True)
class GivenMasters:
    """The masters given, by kind, with their pixels loaders."""

    files: dict[MasterKind, MasterFile]
    bpm: MasterInfo | None = None

    @classmethod
    def read(cls, *, bias: Path | None = None, dark: Path | None = None,
             flat: Path | None = None, bpm: Path | None = None) -> "GivenMasters":
        """Read and recognise each file (FitsError naming the one that can't be used)."""
        files = {}
        for kind, path in ((MasterKind.BIAS, bias), (MasterKind.DARK, dark),
                           (MasterKind.FLAT, flat)):
            if path is not None:
                files[kind] = read_master_file(Path(path), kind)
        bpm_info = None
        if bpm is not None:
            bpm_info = _bpm_info(Path(bpm))
        return cls(files, bpm_info)

    def infos(self) -> list[MasterInfo]:
        out = [f.info(-(i + 1)) for i, f in enumerate(self.files.values())]
        if self.bpm is not None:
            out.append(self.bpm)
        return out

    def loader(self):
        """path -> float32 pixels in ADU (0..1 data scaled back), for MasterCatalogue."""
        by_path = {f.path: f for f in self.files.values()}

        def load(path: Path) -> np.ndarray:
            if path in by_path:
                return by_path[path].pixels()
            from indical.calib.output import master_pixels
            return master_pixels(path)
        return load


def _bpm_info(path: Path) -> MasterInfo:
    from datetime import datetime, timezone

    from indical.calib.rawio import open_raw
    from indical.fits.keywords import header_to_meta
    from indical.frame import FrameType
    if not path.is_file():
        raise FitsError(path, "no such file")
    with open_raw(path) as image:
        header, width, height = image.header, image.width, image.height
    meta = header_to_meta(header, frame_type=FrameType.BIAS)
    config = replace(CameraConfig.from_meta(meta, width, height), temperature_c=None)
    return MasterInfo(id=-99, kind=MasterKind.BPM, path=path, config=config,
                      created=datetime.fromtimestamp(path.stat().st_mtime, timezone.utc))


def _differs(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) > 1e-6
    return a != b


def check_master(light: LightInfo, master: MasterInfo, rules: MatchRules, *,
                 ccd: bool) -> tuple[list[str], list[str], list[str]]:
    """(unusable, mismatches, warnings) for one given master against one light."""
    name = f"master {master.kind.value} {master.path.name}"
    unusable, differ, notes = [], [], []
    mc, lc = master.config, light.config
    if (mc.width, mc.height) != (lc.width, lc.height):
        unusable.append(f"{name} is {mc.size} pixels, the light {lc.size}")
    if mc.binning != lc.binning:
        unusable.append(f"{name} has binning {mc.binning}, the light {lc.binning}")
    if mc.bayer_pattern != lc.bayer_pattern:
        why = f"{name}: {bayer_mismatch(mc.bayer_pattern, lc.bayer_pattern)}"
        if mc.bayer_pattern is None and master.kind is not MasterKind.FLAT:
            # darks and bias of other programs may leave BAYERPAT out: say so, refuse unless
            # the user says it is right
            differ.append(f"{why} (the master records no BAYERPAT)")
        else:
            unusable.append(why)
    checks = [("camera", mc.camera, lc.camera),
              ("readout mode", mc.readout_mode, lc.readout_mode),
              ("gain", mc.gain, lc.gain), ("offset", mc.offset, lc.offset)]
    if master.kind is MasterKind.FLAT:
        checks.append(("filter", master.filter, light.filter))
    for label, have, want in checks:
        if have in (None, "") and want in (None, ""):
            continue
        if have in (None, "") or want in (None, ""):
            who = "the master" if have in (None, "") else "the light"
            notes.append(f"{label} not checked: {who} does not record it ({name})")
        elif _differs(have, want):
            differ.append(f"{name}: {label} {have!r} is not the light's {want!r}")
    if master.kind is MasterKind.DARK and not ccd:
        if not rules.exposure_ok(master.exposure_s, light.exposure_s):
            differ.append(f"{name}: exposure {master.exposure_s:g} s is not the light's "
                          f"{light.exposure_s:g} s (use a dark of the light's exposure, or "
                          f"--ccd to scale the dark current)")
    if master.kind in (MasterKind.BIAS, MasterKind.DARK):
        mt, lt = mc.temperature_c, lc.temperature_c
        if mt is None or lt is None:
            who = "the master" if mt is None else "the light"
            notes.append(f"temperature not checked: {who} does not record it ({name})")
        elif abs(mt - lt) > rules.temperature_tol_c:
            differ.append(f"{name}: temperature {mt:.1f} C is more than "
                          f"{rules.temperature_tol_c:g} C from the light's {lt:.1f} C")
    return unusable, differ, notes


def choose_given(light: LightInfo, given: GivenMasters, rules: MatchRules, *, ccd: bool,
                 allow_mismatch: bool) -> tuple[MasterChoice | None, str, list[str]]:
    """The masters to apply to this light: (choice, "", warnings), or (None, reason, warnings)
    when a master can't or may not be used."""
    infos = {i.kind: i for i in given.infos()}
    problems, warnings = [], []
    for info in infos.values():
        unusable, differ, notes = check_master(light, info, rules, ccd=ccd)
        problems += unusable
        warnings += notes
        if allow_mismatch:
            warnings += [f"used although {d}" for d in differ]
        else:
            problems += differ
    if problems:
        hint = "" if allow_mismatch else " (--allow-mismatch uses it anyway)"
        return None, "; ".join(problems) + hint, warnings
    bias, dark = infos.get(MasterKind.BIAS), infos.get(MasterKind.DARK)
    if not ccd and bias is not None and dark is not None:
        warnings.append(f"master bias {bias.path.name} not used: the CMOS dark holds the bias "
                        f"(--ccd subtracts the bias and scales the dark current)")
        bias = None
    choice = MasterChoice(bias, dark, infos.get(MasterKind.FLAT), infos.get(MasterKind.BPM),
                          missing=())
    return choice, "", warnings


def describe(given: GivenMasters) -> list[str]:
    """One line per given master: its kind, program and scale."""
    out = []
    for f in given.files.values():
        scale = f" (values x{f.scale:g}: 0..1 data)" if f.scale != 1.0 else ""
        out.append(f"{f.kind.value}: {f.path} from {f.program}{scale}")
    return out

