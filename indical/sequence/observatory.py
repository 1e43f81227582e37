"""The object a sequence file's `run(obs)` receives: a Session with the plan verbs that read
like an observing plan (`panel_flats`, `exposure_flats`, `dark_flats`, `twilight_flats`,
`twilight_darks`, besides the Session's `close_cover`, `filters`, `light_off`, ...).

This facade is the one module that knows the flat loops: it imports sequence/panel.py and
sequence/twilight.py, and they import only the Session, so the imports run one way."""

from __future__ import annotations

from typing import Any

from indical.level import Target
from indical.sequence.brightness import ExposureWindow
from indical.sequence.flat_config import FlatsTaken
from indical.sequence.panel import take_dark_flats, take_flats
from indical.sequence.session import Session
from indical.sequence.twilight import (TwilightOptions, TwilightResult, take_darks_for,
                                       take_twilight_flats)


class Observatory(Session):
    """The observatory as a sequence file sees it."""

    def panel_flats(self, filter: str | None, *, count: int, target: Target,
                    exposure_s: float = 1.0, use_trained: bool = True,
                    exposure_range_s: tuple[float, float] | None = None) -> FlatsTaken | None:
        """Flats in one filter with a dimmable panel: brightness search at `exposure_s`; a step
        whose level an exposure within `exposure_range_s` (default half to twice `exposure_s`)
        brings into band is trimmed to it at once (beyond it: see decision 010). Only the
        flats still missing tonight are taken."""
        window = ExposureWindow(*exposure_range_s) if exposure_range_s is not None \
            else ExposureWindow.around(exposure_s)
        return take_flats(self, filter, count=count, target=target, exposure_s=exposure_s,
                          dim=True, use_trained=use_trained, window=window)

    def exposure_flats(self, filter: str | None, *, count: int, target: Target,
                       exposure_s: float = 1.0, use_trained: bool = True,
                       exposure_range_s: tuple[float, float] | None = None
                       ) -> FlatsTaken | None:
        """Flats in one filter at fixed light (an on/off panel): auto-exposure search, within
        `exposure_range_s` when given (else the rig's [flats] limits)."""
        window = ExposureWindow(*exposure_range_s) if exposure_range_s is not None else None
        return take_flats(self, filter, count=count, target=target, exposure_s=exposure_s,
                          dim=False, use_trained=use_trained, window=window)

    def dark_flats(self, *, count: int) -> None:
        """Dark flats at every exposure this run's flats used: light off, cover closed."""
        take_dark_flats(self, count=count)

    def twilight_flats(self, filters: list[str | None], *, count: int, target: Target,
                       **options: Any) -> TwilightResult:
        """Flats from the twilight sky, `count` per filter tonight; options are those of
        `indical.sequence.twilight.TwilightOptions` (twilight, sun limits, exposure range, mount
        dithers, ...)."""
        return take_twilight_flats(self, filters, count=count, target=target,
                                   options=TwilightOptions(**options))

    def twilight_darks(self, result: TwilightResult, *, mode: str, count: int) -> None:
        """Bias or dark flats for the exposures a twilight run used ("bias", "longest",
        "each" or "none")."""
        take_darks_for(self, result, mode=mode, count=count)
