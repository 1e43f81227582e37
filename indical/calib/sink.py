"""The library's frame sink: sequences write frames here instead of into a bare folder.

Each frame is written atomically into `library.root/frames/NIGHT/` and indexed at once; `count`
is answered by the database. A crash between the write and the index leaves a complete but
unindexed file, which the next `indical library sweep` indexes: the database never references
a partial file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from indical.calib.ingest import FrameRecord, inspect_file
from indical.calib.library import CalibrationLibrary
from indical.frame import Frame
from indical.sinks import FitsFolderSink, FrameQuery


class LibrarySink:
    """FrameSink that writes into the calibration library. `on_indexed` is called with each new
    record (the auto-builder uses it to build a master once a group is complete)."""

    def __init__(self, library: CalibrationLibrary, *, longitude_deg: float | None = None,
                 on_indexed: Callable[[FrameRecord], None] | None = None) -> None:
        self.library = library
        self._folder = FitsFolderSink(library.frames_dir, longitude_deg=longitude_deg)
        self.on_indexed = on_indexed
        self.written: list[Path] = []

    def reserve(self, frame: Frame, *, rejected: str | None = None) -> Path:
        """The name the frame will be written under (see FitsFolderSink.reserve)."""
        return self._folder.reserve(frame, rejected=rejected)

    def write(self, frame: Frame, *, path: Path | None = None) -> Path:
        path = self._folder.write(frame, path=path)
        record, _ = self.library.add_frame(inspect_file(path, frame_type=frame.meta.frame_type))
        self.written.append(path)
        if self.on_indexed is not None:
            self.on_indexed(record)
        return path

    def write_rejected(self, frame: Frame, reason: str, *, path: Path | None = None) -> Path:
        """Keep a frame a sequence rejected beside the library's frames (NIGHT/rejected/),
        flagged with the reason and never indexed."""
        return self._folder.write_rejected(frame, reason, path=path)

    def count(self, query: FrameQuery) -> int:
        return self.library.count(query)
