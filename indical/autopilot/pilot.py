"""The autopilot: for each night, wait for each window, decide each task of it (conditions),
run it, journal the decision, and go on whatever happened to the task.

Frames go into the calibration library (one per autopilot folder unless `library` names
another), so what a night needs is what the library lacks, and masters are built after each
task. The rig is opened once and kept: a device that fails a task is tried again by the next
one (the INDI adapters reconnect by themselves), and a rig that can't be opened at all is tried
again before each task that needs it."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from indical.autopilot.arrival import Arrivals
from indical.autopilot.conditions import Needs, sky_condition, weather_reading
from indical.autopilot.journal import Entry, Journal, State, stamp
from indical.autopilot.plan import Plan, Task, Window
from indical.autopilot.windows import Span, current_or_next, local_noon, night_of, night_spans
from indical.calib.db import LibraryTarget, is_url
from indical.clock import Clock, SystemClock
from indical.errors import IndicalError
from indical.rig import Rig, RigSpec, open_rig

#: How often (in the clock's seconds) arrivals are looked at while waiting for a window.
TICK_S = 10.0


class AutopilotError(IndicalError):
    """The autopilot can't run at all (no [site], a plan it can't use); names what to fix."""


@dataclass
class Paths:
    """Where the autopilot keeps things: the library (a file or a postgresql:// URL), its
    state and the journal."""

    home: Path
    library: LibraryTarget | None = None
    journal: Path | None = None
    store: Path | None = None

    @property
    def library_db(self) -> LibraryTarget:
        return self.library or self.home / "library.sqlite"

    @property
    def state_db(self) -> Path:
        """This machine's state (task runs per night, lights seen on arrival): a local SQLite
        file in the output folder, whatever the library is (a PostgreSQL library is shared by
        machines; each autopilot's bookkeeping is its own). An autopilot.sqlite beside a
        library file given with --library (where indical kept it until 2026-12) is still used
        while the output folder has none."""
        here = self.home / "autopilot.sqlite"
        if not here.exists() and self.library is not None and not is_url(self.library):
            before = Path(self.library).parent / "autopilot.sqlite"
            if before.exists():
                return before
        return here

    @property
    def journal_file(self) -> Path:
        return self.journal or self.home / "journal.jsonl"

    @property
    def logs(self) -> Path:
        return self.home / "logs"


@dataclass
class Hooks:
    """Calls the tests (and anyone embedding the autopilot) can hang on: before each window."""

    before_window: Callable[[Span], None] | None = None


@dataclass
class Tally:
    """What a run or a window decided, for exit codes."""

    entries: list[Entry] = field(default_factory=list)

    @property
    def failed(self) -> list[Entry]:
        return [e for e in self.entries if e.outcome == "failed"]


class Autopilot:
    def __init__(self, plan: Plan, spec: RigSpec, paths: Paths, *,
                 say: Callable[[str], None] = lambda message: None,
                 hooks: Hooks | None = None, settle_s: float = 5.0) -> None:
        if spec.site is None:
            raise AutopilotError(f"{spec.source}: [site]: missing; the autopilot needs the "
                                 "site's latitude and longitude for dusk and dawn")
        self.plan = plan
        self.spec = spec
        self.site = spec.site
        self.paths = paths
        self.say = say
        self.hooks = hooks or Hooks()
        self.settle_s = settle_s
        self.rig: Rig | None = None
        self.rig_problem: str | None = None
        self._clock: Clock | None = None
        self._spans: dict[str, list[Span]] = {}
        self.state = State(paths.state_db)
        self.journal = Journal(paths.journal_file)
        self.arrivals: dict[str, Arrivals] = {}
        self.tally = Tally()

    # -- the rig and the clock ---------------------------------------------------------------
    def _open_rig(self) -> Rig | None:
        if self.rig is not None:
            return self.rig
        try:
            self.rig = open_rig(self.spec)
        except IndicalError as exc:
            self.rig_problem = f"the rig could not be opened: {exc}"
            self.say(self.rig_problem)
            return None
        self.rig_problem = None
        if self._clock is None:
            self._clock = self.rig.clock
        return self.rig

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._open_rig()
        if self._clock is None:   # no rig yet: real devices run on the system's time
            self._clock = SystemClock()
        return self._clock

    def close(self) -> None:
        for watcher in self.arrivals.values():
            watcher.stop()
        self.arrivals.clear()
        if self.rig is not None:
            try:
                self.rig.disconnect()
            except IndicalError as exc:
                self.say(f"while closing the rig: {exc}")
            self.rig = None
        self.state.close()

    def __enter__(self) -> "Autopilot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- starting: journal what a crash cut off, settle what it interrupted -------------------
    def recover(self) -> None:
        self.state.journal_pending(self.journal)
        now = self.clock.now()
        interrupted = self.state.interrupted()
        if not interrupted:
            return
        from indical.calib.library import CalibrationLibrary
        with CalibrationLibrary(self.paths.library_db) as lib:
            for run in interrupted:
                # a frame written just before the stop but not indexed yet counts as taken
                folder = lib.frames_dir / run.night
                if folder.is_dir():
                    lib.ingest([folder])
        for run in interrupted:
            task = next((t for t in self.plan.tasks if t.name == run.task), None)
            span = self._span(run.night, task.window) if task and task.window else None
            if task is None or span is None or span.end is None or span.end <= now:
                why = ("it is no longer in the plan" if task is None
                       else "its window is over")
                self._finish(run.night, run.task, "failed",
                             f"interrupted (indical stopped during it) and {why}",
                             datetime.fromisoformat(run.start), now, 0)
            else:
                self.say(f"{run.night} {run.task}: interrupted before; resumes in its window")

    # -- windows ------------------------------------------------------------------------------
    def _spans_of(self, night: str) -> list[Span]:
        if night not in self._spans:
            self._spans[night] = night_spans(self.site, night)
        return self._spans[night]

    def _span(self, night: str, window: Window) -> Span | None:
        return next((s for s in self._spans_of(night) if s.window is window), None)

    def _wait_until(self, when: datetime) -> None:
        """Sleep by the clock until `when`, calibrating arrivals on the way."""
        while True:
            self._arrivals_tick()
            left = (when - self.clock.now()).total_seconds()
            if left <= 0:
                return
            self.clock.sleep(min(left, TICK_S) if self.arrivals else left)

    def run(self, nights: int | None = None) -> Tally:
        """Run window after window, for `nights` nights (counted from the first dusk), or until
        stopped."""
        self.recover()
        self._start_arrivals()
        first = self.state.get("first_night")
        while True:
            span = current_or_next(self.site, self.clock.now(), self._spans)
            if first is None and span.window is Window.DUSK:
                first = span.night
                self.state.set("first_night", first)
            counted = None if first is None else _nights_between(first, span.night)
            if nights is not None and counted is not None and counted >= nights:
                break
            self._run_span(span)
            if nights is not None and counted == nights - 1 and not self._work_after(span):
                if self.plan.arrivals:
                    self._wait_until(span.end)
                break
            self._wait_until(span.end)
        self._arrivals_tick()
        return self.tally

    def _work_after(self, span: Span) -> bool:
        """Whether tonight holds more work after this window: tasks of later windows, or lights
        still to come (arrivals are watched until dawn ends)."""
        later = [w for w in (Window.DUSK, Window.NIGHT, Window.DAWN, Window.DAY)
                 if _index(w) > _index(span.window)]
        if any(self.plan.in_window(w) for w in later):
            return True
        return bool(self.plan.arrivals) and _index(span.window) < _index(Window.DAWN)

    def _run_span(self, span: Span) -> None:
        if span.start is not None and span.start > self.clock.now():
            self._wait_until(span.start)
        if self.hooks.before_window is not None:
            self.hooks.before_window(span)
        tasks = self.plan.in_window(span.window)
        if tasks:
            self.say(f"{span.night} {span.window.value}: {len(tasks)} task(s)")
        for task in tasks:
            self.run_task(task, span)

    def run_once(self, window: Window) -> Tally:
        """`--once WINDOW`: the tasks of that window, now, whatever the sun does (Ekos's
        scheduler calls this at startup or shutdown)."""
        self.recover()
        now = self.clock.now()
        night = night_of(self.site, now)
        for task in self.plan.in_window(window):
            self.run_task(task, Span(window, night, now, None))
        return self.tally

    # -- one task -----------------------------------------------------------------------------
    def run_task(self, task: Task, span: Span) -> Entry | None:
        night = span.night
        done = self.state.run(night, task.name)
        if done is not None and done.status != "running":
            return None   # decided before this restart: never again
        start = self.clock.now()
        if span.end is not None and start >= span.end:
            return self._finish(night, task.name, "skipped",
                                f"the {span.window.value} window closed at {stamp(span.end)} "
                                "before this task's turn", start, start, 0)
        resumed = done is not None
        try:
            holds, why_not = self._conditions(task, night)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a sequence that can't say whether it is needed, ...
            return self._finish(night, task.name, "failed", f"checking only_if: {exc}", start,
                                self.clock.now(), 0)
        if why_not:
            return self._finish(night, task.name, "skipped", "; ".join(why_not), start,
                                self.clock.now(), 0)
        self.state.begin(night, task.name, start)
        self.say(f"{night} {task.name}: starting" + (" again (interrupted before)"
                                                     if resumed else ""))
        try:
            if task.sequence is not None:
                outcome, reason, frames = self._run_sequence(task, span)
            else:
                outcome, reason, frames = self._calibrate_folder(task, night)
        except (KeyboardInterrupt, SystemExit):
            raise   # stopped: the row stays 'running' and the next start resumes it
        except Exception as exc:  # any other failure is this task's, and the night goes on
            self.say(traceback.format_exc())
            outcome, reason, frames = "failed", f"{type(exc).__name__}: {exc}", 0
        if outcome == "done" and holds:
            reason = "; ".join(holds) + (f"; {reason}" if reason else "")
        if resumed and outcome == "done":
            reason += "; resumed after an interruption"
        return self._finish(night, task.name, outcome, reason, start, self.clock.now(), frames)

    def _finish(self, night: str, task: str, outcome: str, reason: str, start: datetime,
                end: datetime, frames: int) -> Entry:
        entry = Entry(night, task, outcome, reason, stamp(start), stamp(end), frames)
        self.state.finish(entry)
        self.state.journal_pending(self.journal)
        self.tally.entries.append(entry)
        self.say(f"{night} {task}: {outcome} ({reason})")
        return entry

    def _conditions(self, task: Task, night: str) -> tuple[list[str], list[str]]:
        """What holds and what does not, in words for the journal."""
        holds: list[str] = []
        fails: list[str] = []
        for condition in task.only_if:
            if condition in ("clear", "cloudy"):
                rig = self._open_rig()
                reading = weather_reading(rig.weather if rig is not None else None)
                problem = sky_condition(condition, reading)
                (fails.append(problem) if problem else
                 holds.append(f"{condition} ({reading.detail or reading.sky.value})"))
            elif condition == "needed":
                problem, missing = self._needed(task, night)
                (fails.append(problem) if problem else holds.append(f"needed ({missing})"))
        return holds, fails

    def _needed(self, task: Task, night: str) -> tuple[str | None, str]:
        from indical.sequence.engine import load_sequence
        module = load_sequence(task.sequence, task.settings)
        ask = getattr(module, "still_needed", None)
        if not callable(ask):
            raise AutopilotError(f"{task.sequence}: has no still_needed(needs) function, so "
                                 f"task {task.name!r} can't check only_if 'needed' (add one, "
                                 "or drop 'needed')")
        rig = self._open_rig()
        if rig is None:
            return f"can't tell whether it is needed: {self.rig_problem}", ""
        camera = rig.camera.name if rig.camera is not None else None
        filters = None
        if rig.filter_wheel is not None:
            try:
                filters = list(rig.filter_wheel.names())
            except IndicalError as exc:
                return f"can't tell whether it is needed: {exc}", ""
        needs = Needs(self.paths.library_db, self._night_start(night), camera, filters)
        missing = ask(needs)
        if not missing:
            return "not needed: nothing it takes is missing tonight", ""
        return None, str(missing)

    def _night_start(self, night: str) -> datetime:
        return local_noon(self.site, night)

    def _run_sequence(self, task: Task, span: Span) -> tuple[str, str, int]:
        from indical.calib.library import CalibrationLibrary
        from indical.calib.sink import LibrarySink
        from indical.sequence.engine import load_sequence, run_sequence
        from indical.sequence.trained import TrainedStore

        rig = self._open_rig()
        if rig is None:
            return "failed", self.rig_problem or "the rig could not be opened", 0
        module = load_sequence(task.sequence)
        overrides: dict[str, Any] = dict(task.settings)
        if hasattr(module, "LIBRARY") and "LIBRARY" not in overrides:
            overrides["LIBRARY"] = str(self.paths.library_db)
        if (hasattr(module, "TWILIGHT") and "TWILIGHT" not in overrides
                and span.window in (Window.DUSK, Window.DAWN)):
            overrides["TWILIGHT"] = span.window.value
        log_path = self.paths.logs / f"{span.night}-{_slug(task.name)}.jsonl"
        with CalibrationLibrary(self.paths.library_db) as lib:
            sink = LibrarySink(lib, longitude_deg=self.site.longitude_deg)
            result = run_sequence(task.sequence, rig, sink, log_path=log_path,
                                  store=TrainedStore(self.paths.store), overrides=overrides,
                                  say=lambda m: self.say(f"  {task.name}: {m}"))
            if result.interrupted:
                raise KeyboardInterrupt
            built = self._build_masters(lib)
        frames = len(result.frames)
        if result.error is not None:
            reason = str(result.error) or type(result.error).__name__
            if result.cleanup_problems:
                reason += "; could not leave safe: " + "; ".join(result.cleanup_problems)
            return "failed", reason, frames
        if result.cleanup_problems:
            return "failed", "could not leave safe: " + "; ".join(result.cleanup_problems), frames
        return "done", f"{frames} frame(s)" + (f", {built} master(s) built" if built else ""), \
            frames

    def _build_masters(self, lib) -> int:
        from indical.calib.autobuild import AutoBuildPolicy, build_group, due_groups
        policy = AutoBuildPolicy()
        built = 0
        for group in due_groups(lib, policy):
            try:
                build_group(lib, group, policy)
                built += 1
            except IndicalError as exc:
                self.say(f"master {group.label()} not built: {exc}")
        return built

    # -- calibrating lights ---------------------------------------------------------------------
    def _calibrate(self, paths: list[Path]):
        from indical.calib.calibrate import CalibrateOptions, calibrate_paths
        from indical.calib.library import CalibrationLibrary
        from indical.calib.status import StatusStore
        with CalibrationLibrary(self.paths.library_db) as lib:
            store = StatusStore(lib.db_path)
            try:
                return calibrate_paths(lib, store, paths, CalibrateOptions(workers=1))
            finally:
                store.close()

    def _calibrate_folder(self, task: Task, night: str) -> tuple[str, str, int]:
        """A calibrate task at a window: every light of the folder not calibrated yet."""
        from indical.calib.status import Status
        if not task.calibrate.is_dir():
            return "failed", f"{task.calibrate}: no such folder of lights", 0
        summary = self._calibrate([task.calibrate])
        done = summary.count(Status.CALIBRATED)
        bad = [o for o in summary.outcomes if o.status in (Status.FAILED, Status.NO_MASTERS)]
        reason = f"{done} light(s) calibrated, {len(summary.already)} done before"
        if bad:
            reason += "; not calibrated: " + "; ".join(f"{o.path.name}: {o.message}"
                                                       for o in bad[:5])
            return "failed", reason, done
        return "done", reason, done

    def _start_arrivals(self) -> None:
        for task in self.plan.arrivals:
            self.arrivals[task.name] = Arrivals(task.calibrate, settle_s=self.settle_s).start()

    def _arrivals_tick(self) -> None:
        for name, watcher in self.arrivals.items():
            for arrived in watcher.complete():
                self._arrived(name, arrived)

    def _arrived(self, task: str, arrived) -> None:
        from indical.calib.status import Status
        key = str(arrived.path.resolve())
        seen = self.state.arrival(key)
        if seen is not None and seen[:2] == (arrived.size, arrived.mtime_ns):
            return   # this very file was handled before (a restart sees it again)
        now = self.clock.now()
        night = night_of(self.site, now)
        if not arrived.complete:
            outcome, reason = "failed", f"{arrived.path}: not a whole FITS file (cut short?)"
        else:
            try:
                summary = self._calibrate([arrived.path])
            except Exception as exc:
                outcome, reason = "failed", f"{arrived.path}: {type(exc).__name__}: {exc}"
            else:
                o = summary.outcomes[0] if summary.outcomes else None
                if o is None:
                    outcome, reason = "done", f"{arrived.path.name}: calibrated before"
                elif o.status is Status.CALIBRATED:
                    outcome, reason = "done", f"{arrived.path.name} -> {o.output}"
                elif o.status is None:
                    outcome, reason = "skipped", f"{arrived.path.name}: {o.message or 'not a light'}"
                else:
                    outcome, reason = "failed", f"{arrived.path.name}: {o.message}"
        self.state.record_arrival(key, task, night, arrived.size, arrived.mtime_ns, outcome,
                                  reason, now)
        entry = Entry(night, task, outcome, reason, stamp(now), stamp(self.clock.now()),
                      1 if outcome == "done" else 0)
        self.journal.append(entry)
        self.tally.entries.append(entry)
        self.say(f"{night} {task}: {outcome} ({reason})")


def _index(window: Window) -> int:
    return (Window.DUSK, Window.NIGHT, Window.DAWN, Window.DAY).index(window)


def _nights_between(first: str, night: str) -> int:
    from datetime import date
    return (date.fromisoformat(night) - date.fromisoformat(first)).days


def _slug(text: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "task"


__all__ = ["Autopilot", "AutopilotError", "Hooks", "Paths", "Tally"]
