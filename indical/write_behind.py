"""Frames written while the next exposure runs.

A sequence saves frame N and starts exposure N+1 at once: `WriteBehindSink.write` takes the
frame's file name from the sink at once (so the exposure log and the sequence know where it
goes) and hands the write, atomic as ever, and the indexing to one writer thread. At most
`depth` frames wait; a sequence faster than the disk then waits for it instead of filling
memory (a 61-megapixel frame is 122 MB).

Nothing is lost or hidden: a failed write is raised by the next call on the sink (`write`,
`count`, `flush`, `close`), as the sink's own error; `close` (run on the end of a sequence, an
error and Ctrl-C) waits for every frame handed over; a frame another program took the name of
meanwhile goes under the next free one (`moved`). The writer thread is not a daemon: frames
still waiting when the program ends are written before it exits.

A frame handed over is written once the sequence requests its next exposure
(`starting_exposure`, which the sequence's `expose` calls), or `hold_s` after it was handed
over, whichever comes first: so the writer's pass over the frame, its share of the
interpreter and its flush to disk run during the exposure, not between the frame's arrival and
the next request, where they would lengthen the time between two frames on a small machine."""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from indical.frame import Frame
from indical.sinks import FrameQuery, FrameSink

log = logging.getLogger(__name__)

_STOP = object()


class WriteBehindSink:
    """A FrameSink whose writes overlap what the sequence does next. The wrapped sink needs
    `reserve(frame)` and `write(frame, path=)` (FitsFolderSink and LibrarySink have them);
    calls it doesn't offer are passed through after the pending writes are done."""

    def __init__(self, sink: FrameSink, *, depth: int = 1, hold_s: float = 1.0) -> None:
        self.sink = sink
        self.hold_s = hold_s
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        # frames handed over, and how many of them may be written (see starting_exposure)
        self._handed = 0
        self._released = 0
        self._gate = threading.Condition()
        self._error: BaseException | None = None
        self._errors_lock = threading.Lock()
        #: reserved path -> where the frame went, when another program took the name meanwhile
        self.moved: dict[Path, Path] = {}
        #: paths handed out whose write failed (their frames are not on disk)
        self.failed: list[Path] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="frame writer", daemon=False)
        self._thread.start()

    # ----- the writer thread -----
    def _run(self) -> None:
        main = threading.main_thread()
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if not main.is_alive():   # the program ended without closing: nothing waits
                    return
                continue
            try:
                if item is _STOP:
                    return
                reserved, write, ticket, handed_at = item
                self._wait_for_release(ticket, handed_at)
                try:
                    actual = write()
                except BaseException as exc:
                    log.error("%s: not written: %s", reserved, exc)
                    with self._errors_lock:
                        self.failed.append(reserved)
                        if self._error is None:
                            self._error = exc
                else:
                    if actual != reserved:
                        log.warning("%s was taken by another program meanwhile; the frame went "
                                    "to %s", reserved, actual)
                        self.moved[reserved] = actual
            finally:
                self._queue.task_done()

    def _wait_for_release(self, ticket: int, handed_at: float) -> None:
        """Until the sequence requests its next exposure after frame number `ticket` was handed
        over (at `handed_at`), at most `hold_s` after that (and not once the program ends)."""
        deadline = handed_at + self.hold_s
        main = threading.main_thread()
        with self._gate:
            while self._released < ticket and main.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._gate.wait(min(left, 0.5))

    def _release_all(self) -> None:
        with self._gate:
            self._released = self._handed
            self._gate.notify_all()

    # ----- handing over -----
    def starting_exposure(self) -> None:
        """The sequence is about to request an exposure: the frames handed over so far are
        written now, while it runs."""
        self._release_all()

    def _raise_pending(self) -> None:
        with self._errors_lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def _hand_over(self, reserved: Path, write: Callable[[], Path]) -> Path:
        if self._closed:
            raise RuntimeError("the frame writer was closed")
        self._raise_pending()
        with self._gate:
            self._handed += 1
            ticket = self._handed
        item = (reserved, write, ticket, time.monotonic())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # `depth` frames wait already: let them be written, and wait for room
            self._release_all()
            self._queue.put(item)
        return reserved

    def write(self, frame: Frame) -> Path:
        reserved = self.sink.reserve(frame)  # type: ignore[attr-defined]
        return self._hand_over(reserved, lambda: self.sink.write(frame, path=reserved))  # type: ignore[call-arg]

    def write_rejected(self, frame: Frame, reason: str) -> Path:
        inner = getattr(self.sink, "write_rejected", None)
        if inner is None:
            raise AttributeError(f"{type(self.sink).__name__} keeps no rejected frames")
        reserved = self.sink.reserve(frame, rejected=reason)  # type: ignore[attr-defined]
        return self._hand_over(reserved, lambda: inner(frame, reason, path=reserved))

    def flush(self) -> None:
        """Wait until every frame handed over is written; raise the first failure."""
        self._release_all()
        self._queue.join()
        self._raise_pending()

    def count(self, query: FrameQuery) -> int:
        self.flush()
        return self.sink.count(query)

    def finish(self) -> None:
        """Write what waits and end the writer thread; a failure is left for `close` to raise
        (for code that is already ending by an error of its own)."""
        if not self._closed:
            self._closed = True
            self._release_all()
            self._queue.put(_STOP)
            self._thread.join()

    def close(self) -> None:
        """Write what waits, end the writer thread, raise the first failure not yet raised."""
        self.finish()
        self._raise_pending()

    def where(self, path: Path) -> Path | None:
        """Where a frame handed over as `path` is on disk (None: its write failed)."""
        if path in self.failed:
            return None
        return self.moved.get(path, path)

    def __getattr__(self, name: str) -> Any:
        # the wrapped sink's other calls (reject, root, ...) see every frame written first
        value = getattr(self.sink, name)
        if not callable(value):
            return value

        def after_pending(*args: Any, **kwargs: Any) -> Any:
            self.flush()
            return value(*args, **kwargs)
        return after_pending


def write_behind(sink: FrameSink, *, depth: int = 1) -> FrameSink:
    """`sink` with writes behind the sequence when its class reserves names (a wrapper that
    only passes calls on is left as it is: its `write` may mean more); else `sink` itself."""
    if callable(getattr(type(sink), "reserve", None)):
        return WriteBehindSink(sink, depth=depth)  # type: ignore[return-value]
    return sink
