"""The flat configuration types, a leaf module the session and the flat loops both import: the
rig's [flats] limits, and the configurations flats were taken at (for matching dark flats)."""

from __future__ import annotations

from dataclasses import dataclass

from indical.rig import Rig
from indical.settings import Setting, non_negative, positive, read_settings
from indical.sinks import FrameQuery

#: Keys of the rig file's optional [flats] table.
FLATS_SCHEMA = [
    Setting("min_exposure_s", float, 0.0,
            "shortest flat exposure: mechanical shutter or panel flicker (camera minimum if lower)",
            check=non_negative),
    Setting("max_exposure_s", float, 60.0, "longest flat exposure a search may choose", check=positive),
    Setting("max_search_exposures", int, 10, "hard cap on exposures to find one setting",
            check=positive),
    Setting("cover_timeout_s", float, 120.0, "how long a cover may take to move", check=positive),
    Setting("filter_timeout_s", float, 60.0, "how long a filter change may take", check=positive),
]


@dataclass(frozen=True)
class FlatSettings:
    """The rig's [flats] table, validated once."""

    min_exposure_s: float = 0.0
    max_exposure_s: float = 60.0
    max_search_exposures: int = 10
    cover_timeout_s: float = 120.0
    filter_timeout_s: float = 60.0

    @classmethod
    def from_rig(cls, rig: Rig) -> "FlatSettings":
        table = rig.spec.tables.get("flats", {})
        return cls(**read_settings(table, FLATS_SCHEMA, source=rig.spec.source, section="flats",
                                   ignore=()))


@dataclass(frozen=True)
class FlatsTaken:
    """Flats taken this run (or earlier tonight) in one filter at one exposure: what dark flats
    must match. (A camera configuration a master must match is `calib.config.CameraConfig`.)"""

    filter: str | None
    exposure_s: float
    brightness: int | None
    query: FrameQuery
