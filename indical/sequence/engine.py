"""Running a sequence file: load it, hand it an Observatory, and whatever happens (the end, an error,
a lost device, one Ctrl-C) leave the hardware safe: exposure aborted, light off, cover where the
sequence file asks.

A sequence file is plain Python with a `run(obs)` function and, optionally, upper-case settings
(`FLATS_PER_FILTER = 20`) that `indical run --set NAME=VALUE` can change, and
`COVER_ON_EXIT = "open" | "closed" | "leave"`."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import math
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from indical.errors import IndicalError
from indical.rig import Rig, RigSpec, open_rig
from indical.sequence.log import ExposureLog
from indical.sequence.observatory import Observatory
from indical.sequence.session import Session
from indical.sequence.trained import TrainedStore
from indical.sinks import FitsFolderSink, FrameSink
from indical.write_behind import WriteBehindSink, write_behind


class SequenceError(IndicalError):
    """A sequence file can't be loaded or its settings are wrong; names the file and setting."""


@dataclass
class RunResult:
    """What a run did: frames written, where the log is, how it ended."""

    sequence: Path
    frames: list[Path] = field(default_factory=list)
    log_path: Path | None = None
    interrupted: bool = False
    error: BaseException | None = None
    cleanup_problems: list[str] = field(default_factory=list)


class _NoBytecodeLoader(importlib.machinery.SourceFileLoader):
    """Loads a sequence file like any import but writes no __pycache__ beside it: the user's
    folder is theirs (and may be read-only), and a sequence is loaded once per run, so cached
    bytecode saves nothing. (Per loader, unlike sys.dont_write_bytecode, which would change
    imports in every thread of the process while a sequence loads.)"""

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        return None


def load_sequence(path: Path, overrides: dict[str, Any] | None = None) -> ModuleType:
    """Import a sequence file and apply `NAME=value` overrides to its upper-case settings."""
    path = Path(path)
    if not path.is_file():
        raise SequenceError(f"{path}: no such sequence file")
    name = f"indical_sequence_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path,
                                                  loader=_NoBytecodeLoader(name, str(path)))
    if spec is None or spec.loader is None:
        raise SequenceError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SequenceError(f"{path}: can't load it ({type(exc).__name__}: {exc})") from exc
    if not callable(getattr(module, "run", None)):
        raise SequenceError(f"{path}: has no run(obs) function")
    for name, value in (overrides or {}).items():
        if not name.isupper() or not hasattr(module, name):
            settings = [n for n in vars(module) if n.isupper()]
            raise SequenceError(f"{path}: no setting {name!r} to change (settings: "
                                f"{', '.join(settings) or 'none'})")
        setattr(module, name, _checked_override(name, value, getattr(module, name)))
    cover = getattr(module, "COVER_ON_EXIT", "leave")
    if cover not in COVER_STATES:
        raise SequenceError(f"{path}: COVER_ON_EXIT must be 'open', 'closed' or 'leave', "
                            f"got {cover!r}")
    return module


COVER_STATES = ("open", "closed", "leave")


def _checked_override(name: str, value: Any, current: Any) -> Any:
    """`value` for a setting whose value in the file is `current`, if it is of the same kind:
    a count stays a whole number above 0, a time a number above 0, a Target a Target.
    Otherwise SequenceError: `--set NAME=VALUE: NAME needs ...`."""
    shown = value if isinstance(value, str) else repr(value)

    def refuse(need: str) -> SequenceError:
        return SequenceError(f"--set {name}={shown}: {name} needs {need} (the file has "
                             f"{current!r})")

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise refuse("True or False")
        return value
    if isinstance(current, int):
        floor, need = (1, "a whole number above 0") if current > 0 else \
            (0, "a whole number, 0 or more") if current == 0 else (None, "a whole number")
        if not (isinstance(value, int) and not isinstance(value, bool)) \
                or (floor is not None and value < floor):
            raise refuse(need)
        return value
    if isinstance(current, float):
        positive = current > 0
        if not is_number(value) or (positive and value <= 0) or (current == 0 and value < 0):
            raise refuse("a number above 0" if positive else "a number")
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise refuse("a string")
        return value
    if current is None:  # no type to go by, except for the filter lists every sequence has
        if not name.endswith("FILTERS") or value is None or isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise refuse("a list of names like ['L', 'R'], a name, or None")
    if isinstance(current, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise refuse("a list like " + repr(list(current)))
        return type(current)(value)
    if not isinstance(value, type(current)):
        raise refuse(f"a {type(current).__name__}, which --set can't make: change it in a "
                     "copy of the sequence file")
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` with VALUE a Python literal (5, 0.5, "open", ["L", "R"]) or a bare word."""
    if "=" not in text:
        raise SequenceError(f"--set {text!r}: expected NAME=VALUE")
    name, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name.strip(), value


def default_log_path(sink: FrameSink, started: datetime) -> Path | None:
    """Beside the frames: ROOT/exposures-YYYYMMDDTHHMMSS.jsonl for a folder sink."""
    root = getattr(sink, "root", None)
    if root is None:
        return None
    return Path(root) / f"exposures-{started.strftime('%Y%m%dT%H%M%S')}.jsonl"


class _SigintGuard:
    """The first Ctrl-C stops the sequence (KeyboardInterrupt); during the clean-up that follows
    further Ctrl-Cs are noted but do not cut it short, so one is enough and the hardware ends
    safe. Only in the main thread (signals can't be caught elsewhere)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.previous: Any = None
        self.active = threading.current_thread() is threading.main_thread()

    def _stop(self, signum: int, frame: Any) -> None:
        # From here on further Ctrl-Cs are held, with no gap before the clean-up starts.
        signal.signal(signal.SIGINT, self._hold)
        raise KeyboardInterrupt

    def _hold(self, signum: int, frame: Any) -> None:
        self.say("already stopping: leaving the hardware safe, please wait")

    def __enter__(self) -> "_SigintGuard":
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._stop)
        return self

    def cleaning(self) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self._hold)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self.previous)


def safe_state(obs: Session) -> list[str]:
    """Abort any exposure, turn the light off, put the cover where the sequence asked. Every
    step is tried even if an earlier one fails; returns what went wrong."""
    problems: list[str] = []
    rig = obs.rig

    def attempt(what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            problems.append(f"{what}: {exc}")

    if rig.camera is not None:
        attempt("aborting the exposure", rig.camera.abort)
    attempt("turning the light off", obs.light.off)
    if rig.cover is not None:
        state = obs.cover_on_exit_state
        if state == "open":
            attempt("opening the cover", obs.open_cover)
        elif state == "closed":
            attempt("closing the cover", obs.close_cover)
    return problems


def run_sequence(path: Path, rig: Rig, sink: FrameSink, *, log_path: Path | None = None,
                 store: TrainedStore | None = None, overrides: dict[str, Any] | None = None,
                 say: Callable[[str], None] = lambda message: None) -> RunResult:
    """Run a sequence file on a connected rig. Errors and Ctrl-C are not raised: the result
    says how the run ended (`interrupted`, `error`), after the hardware was left safe."""
    module = load_sequence(path, overrides)
    cover_on_exit = getattr(module, "COVER_ON_EXIT", "leave")
    if cover_on_exit not in ("open", "closed", "leave"):
        raise SequenceError(f"{path}: COVER_ON_EXIT must be 'open', 'closed' or 'leave', "
                            f"got {cover_on_exit!r}")
    started = datetime.now(timezone.utc)
    log_path = log_path or default_log_path(sink, started)
    log = ExposureLog(log_path)
    result = RunResult(Path(path), log_path=log_path)
    obs: Observatory | None = None
    # frame N is written while exposure N+1 runs (write_behind.py)
    writer = write_behind(sink)
    with _SigintGuard(say) as guard:
        try:
            obs = Observatory(rig, writer, log, store=store, say=say,
                              cover_on_exit=cover_on_exit)
            module.run(obs)
        except KeyboardInterrupt:
            guard.cleaning()
            result.interrupted = True
            say("interrupted: leaving the hardware safe")
        except Exception as exc:
            guard.cleaning()
            result.error = exc
        finally:
            guard.cleaning()
            if obs is not None:
                result.cleanup_problems = safe_state(obs)
            writers = [writer, *(obs.writers if obs is not None else ())]
            for w in writers:
                _finish_writes(w, result)
            if obs is not None:
                result.frames = _on_disk(writers, obs.frames_saved)
            try:
                log.close()
            except OSError as exc:      # its lines are in the file; only the last fsync failed
                result.cleanup_problems.append(str(exc))
    return result


def _finish_writes(writer: FrameSink, result: RunResult) -> None:
    """Wait for the frames still being written; a failed write is the run's error when it had
    none (else it is listed with the clean-up problems)."""
    if not isinstance(writer, WriteBehindSink):
        return
    try:
        writer.close()
    except Exception as exc:
        if result.error is None and not result.interrupted:
            result.error = exc
        else:
            result.cleanup_problems.append(f"writing frames: {exc}")


def _on_disk(writers: list[FrameSink], saved: list[Path]) -> list[Path]:
    """Where the frames saved this run are: moved on when their name was taken meanwhile, left
    out when their write failed."""
    behind = [w for w in writers if isinstance(w, WriteBehindSink)]
    on_disk = []
    for path in saved:
        where: Path | None = path
        for w in behind:
            where = w.where(path)
            if where != path:
                break
        if where is not None:
            on_disk.append(where)
    return on_disk


def run_file(path: Path, spec: RigSpec, out: Path, *, log_path: Path | None = None,
             store_path: Path | None = None, overrides: dict[str, Any] | None = None,
             sink: FrameSink | None = None,
             say: Callable[[str], None] = lambda message: None) -> RunResult:
    """Open the rig, run the sequence into `sink` (default: a FITS folder at `out`), close the
    rig. Used by `indical run` and `indical demo`."""
    rig = open_rig(spec)
    result: RunResult | None = None
    try:
        if sink is None:
            sink = FitsFolderSink(out, longitude_deg=rig.site.longitude_deg if rig.site else None)
        store = TrainedStore(store_path)
        result = run_sequence(path, rig, sink, log_path=log_path, store=store,
                              overrides=overrides, say=say)
    finally:
        try:
            rig.disconnect()
        except IndicalError as exc:
            if result is None:
                raise
            # the run's own outcome stays the headline; a device that can't be released
            # (a server gone) is reported beside it
            result.cleanup_problems.append(str(exc))
    return result


__all__ = ["RunResult", "SequenceError", "load_sequence", "parse_override", "run_file",
           "run_sequence", "safe_state", "default_log_path"]
