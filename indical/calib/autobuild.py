"""Building masters from the library: which groups are due, and building one into the library.

A group is due when it has at least `min_frames_for_master` frames and some of them are in no
current master. The sink builds as soon as a group gains `min_frames_for_master` frames that no
current master holds (at 10, 20, ... frames by default); `sweep` builds every due group, so
frames added after the last build, or missed by a crash or restart, end up in a master. A new
master supersedes the previous one of the same configuration; both stay recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from indical.calib.combine.engine import DEFAULT_MEMORY_LIMIT
from indical.calib.combine.options import CombineOptions
from indical.calib.config import CameraConfig
from indical.calib.grouping import ConfigKey, Group, GroupingOptions, group_frames
from indical.calib.ingest import FrameRecord
from indical.calib.library import CalibrationLibrary, MasterRecord
from indical.calib.master import MasterSpec, Precal, build_master, write_master
from indical.calib.precal import DEFAULT_EXPOSURE_TOL, PrecalTarget, choose_precal
from indical.filenames import path_inside
from indical.frame import FrameType

# Masters that flats subtract are built first.
_BUILD_ORDER = {FrameType.BIAS: 0, FrameType.DARK: 1, FrameType.DARKFLAT: 2, FrameType.FLAT: 3}


@dataclass(frozen=True)
class AutoBuildPolicy:
    """When and how the library builds masters by itself."""

    min_frames_for_master: int = 10
    grouping: GroupingOptions = field(default_factory=GroupingOptions)
    combine: CombineOptions = field(default_factory=CombineOptions)
    flat_precal_from_library: bool = True
    precal_exposure_tol: float = DEFAULT_EXPOSURE_TOL
    flat_normalisation: str = "channel"   # colour master flats: per CFA channel, or overall
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT

    def __post_init__(self) -> None:
        if self.min_frames_for_master < 2:
            raise ValueError(f"min_frames_for_master must be at least 2, got {self.min_frames_for_master}")


# Camera configuration fields that group keys have carried since the first library: always
# written, so the keys of masters already recorded stay equal. Fields added later are written
# only when set (the temperature, clustered apart, never is).
_FIRST_KEY_FIELDS = ("camera", "readout_mode", "gain", "offset", "binning", "width", "height")


def group_key_json(key: ConfigKey) -> str:
    """Canonical text of a configuration: masters with equal text (and temperatures within the
    clustering width) are the same master, one superseding the other."""
    d = {name: value for name, value in key.config.to_json().items()
         if name in _FIRST_KEY_FIELDS or value is not None}
    if key.flat_source is not None:  # keys made before flats had a source stay as they were
        d["flat_source"] = key.flat_source
    d["frame_type"] = key.frame_type.value
    d["filter"] = key.filter
    d["exposure_s"] = None if key.exposure_s is None else float(f"{key.exposure_s:.4g}")
    return json.dumps(d, sort_keys=True)


def due_groups(library: CalibrationLibrary, policy: AutoBuildPolicy, *, min_new: int = 1) -> list[Group]:
    """Groups with enough frames and at least `min_new` frames in no current master, in build
    order (bias, dark, dark flat, flat)."""
    records = [r for r in library.frames() if r.meta.frame_type is not FrameType.LIGHT]
    grouping = GroupingOptions(keys=policy.grouping.keys, temp_width_c=policy.grouping.temp_width_c,
                               exposure_rel_tol=policy.grouping.exposure_rel_tol,
                               min_group=policy.min_frames_for_master)
    groups, _ = group_frames(records, grouping)
    covered = library.frame_ids_in_current_masters()
    due = [g for g in groups if sum(r.id not in covered for r in g.records) >= min_new]
    return sorted(due, key=lambda g: (_BUILD_ORDER[g.key.frame_type], g.label()))


def _config(group: Group) -> CameraConfig:
    """The group's camera configuration, at its mean temperature."""
    return replace(group.records[0].config, temperature_c=group.temperature_c)


#: Held (shared) by every build from writing its master file until the file is indexed, so
#: `sweep` never takes a master being indexed by another process for one a crash left behind.
MASTERS_BEING_WRITTEN = "masters-being-written"


def build_group(library: CalibrationLibrary, group: Group, policy: AutoBuildPolicy, *,
                progress: Callable[[int, int], None] | None = None) -> MasterRecord:
    """Build, write and index the master of one group. The file is complete before the
    database refers to it; a failure leaves no row and no partial file.

    Processes sharing a PostgreSQL library build one group at a time: a process that finds
    the group's frames all in a current master once it gets its turn (another process built
    it meanwhile) returns that master and builds nothing."""
    with library.db.held(f"build:{group_key_json(group.key)}"):
        built = built_meanwhile(library, group)
        if built is not None:
            return built
        with library.db.held(MASTERS_BEING_WRITTEN, shared=True):
            spec, path = plan_group(library, group, policy)
            build = build_master(spec, progress=progress)
            write_master(build, path)
            return index_group(library, group, policy, spec, path,
                               exposure_s=build.meta.exposure_s,
                               method=build.result.options.method.value,
                               parameters=build.result.options.parameters())


def built_meanwhile(library: CalibrationLibrary, group: Group) -> MasterRecord | None:
    """The current master that already holds every frame of the group (another process built
    it while this one waited for the group's lock), or None."""
    covered = library.frame_ids_in_current_masters()
    if not all(r.id in covered for r in group.records):
        return None
    wanted = {r.id for r in group.records}
    return next((m for m in library.masters(group_key=group_key_json(group.key))
                 if {f.id for f in library.master_sources(m.id)} >= wanted), None)


def plan_group(library: CalibrationLibrary, group: Group,
               policy: AutoBuildPolicy) -> tuple[MasterSpec, Path]:
    """What to build for a group (flats: the precalibration the library has for them) and the
    new master's path in the library's masters folder. Reads the library, writes nothing."""
    kind = group.key.frame_type
    precal = Precal()
    if kind is FrameType.FLAT and policy.flat_precal_from_library:
        config = _config(group)
        choice = choose_precal(library.masters(), PrecalTarget(config, group.exposure_s),
                               sensor=library.sensor_of(config.camera),
                               exposure_tol=policy.precal_exposure_tol)
        if choice is not None:
            precal = Precal(image=choice.image(), description=choice.description,
                            reason=choice.reason)
    spec = MasterSpec(paths=[Path(r.path) for r in group.records], frame_type=kind,
                      options=policy.combine, precal=precal, ignore_type=True,
                      memory_limit_bytes=policy.memory_limit_bytes,
                      flat_normalisation=policy.flat_normalisation)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    library.masters_dir.mkdir(parents=True, exist_ok=True)
    return spec, path_inside(library.masters_dir, f"master_{group.label()}_{stamp}.fits")


def index_group(library: CalibrationLibrary, group: Group, policy: AutoBuildPolicy,
                spec: MasterSpec, path: Path, *, exposure_s: float, method: str,
                parameters: dict) -> MasterRecord:
    """Record a group's master, written whole at `path`, in the library (superseding the
    previous one); if that fails the file is removed, never left unknown to the library."""
    kind = group.key.frame_type
    record = MasterRecord(
        path=str(path.resolve()), frame_type=kind, config=_config(group),
        filter=group.key.filter, exposure_s=exposure_s,
        group_key=group_key_json(group.key), method=method, parameters=parameters,
        precal=spec.precal.description, n_frames=len(group.records),
        precal_reason=spec.precal.reason, flat_source=group.key.flat_source)
    try:
        return library.add_master(record, [r.id for r in group.records if r.id is not None],
                                  temperature_tol_c=policy.grouping.temp_width_c)
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a master the library does not know
        raise


class AutoBuilder:
    """Hook for LibrarySink.on_indexed: builds a group's master once it has
    `min_frames_for_master` frames that no current master holds."""

    def __init__(self, library: CalibrationLibrary, policy: AutoBuildPolicy | None = None) -> None:
        self.library = library
        self.policy = policy or AutoBuildPolicy()
        self.built: list[MasterRecord] = []

    def __call__(self, record: FrameRecord) -> None:
        if record.meta.frame_type is FrameType.LIGHT:
            return
        for group in due_groups(self.library, self.policy, min_new=self.policy.min_frames_for_master):
            if any(r.id == record.id for r in group.records):
                self.built.append(build_group(self.library, group, self.policy))
