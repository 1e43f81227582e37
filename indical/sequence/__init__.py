"""Sequences: the small public API sequence files use, and the engine that runs them.

A sequence file (see `sequences/panel_flats.py`) defines `run(obs)`; `obs` is an `Observatory`
(a `Session` with the plan verbs):

    COVER_ON_EXIT = "open"                 # where the cover ends, however the run ends

    def run(obs):
        obs.close_cover()
        for name in obs.filters():
            obs.panel_flats(name, count=20, target=Target.fraction(0.5, tolerance=0.1))
        obs.dark_flats(count=20)

This package's own namespace is that API (`Target`, `Band`, `Level`, ...) and imports neither
the engine nor the flat loops, so any module may import from it without a cycle. The engine
(`indical.sequence.engine.run_sequence`) owns timeouts, Ctrl-C, the JSON-lines exposure log and
the safe state at the end; `indical.sequence.observatory` is the facade `obs` is made from. The
decisions (levels, next brightness, next exposure) are pure functions in `level`, `brightness`
and `exposure`."""

from indical.level import Band, Level, Target
from indical.sequence.flat_config import FlatSettings, FlatsTaken
from indical.sequence.panel import FlatSearchFailed
from indical.sequence.session import Session

__all__ = ["Band", "FlatSearchFailed", "FlatSettings", "FlatsTaken", "Level", "Session", "Target"]
