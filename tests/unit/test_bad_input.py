"""The bad-input corpus: careless or broken inputs to every command a user runs (master, library
ingest, calibrate, bpm, needs, report, rig check, run). Each gives one clear line naming the
file, key or setting and what to do; a non-zero exit status where the work was not done; no
traceback; no partial or temporary file; nothing written before changed.

One table of cases (badinput_cases.py), one parametrised test. Most cases run in-process; those
about permissions run in a subprocess that cannot ignore them (as root: without
CAP_DAC_OVERRIDE), and disk-full cases run on a small full tmpfs (as root) or under a file-size
limit."""

from __future__ import annotations

import fnmatch
import re

import pytest

from badinput_cases import CASES
from badinput_world import World, run_in_process, run_subprocess, snapshot, temporary_files


def test_the_corpus_is_large_and_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 120
    commands = {c.name.split(":")[0] for c in CASES}
    assert commands >= {"master", "ingest", "calibrate", "bpm", "needs", "report", "rig", "run"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case, tmp_path):
    world = World(tmp_path / "w")
    world.root.mkdir()
    try:
        argv = case.setup(world)
        before = snapshot(world.root)
        if world.fsize is not None:
            outcome = run_subprocess(argv, fsize=world.fsize, env=case.env)
        elif case.via == "in-process":
            outcome = run_in_process(argv, env=case.env or None)
        else:
            outcome = run_subprocess(argv, unprivileged=case.via == "unprivileged", env=case.env)
        after = snapshot(world.root)
    finally:
        for undo in reversed(world.cleanups):
            undo()
    text = " ".join(outcome.output.split())
    shown = f"exit {outcome.code}, output:\n{outcome.output}"
    assert "Traceback" not in outcome.output, shown
    assert "internal error" not in outcome.output, shown
    assert outcome.code == case.code, shown
    assert re.search(case.message, text), f"expected /{case.message}/; {shown}"
    if case.code != 0:
        assert outcome.output.count("error:") <= 1, shown
    changed = [k for k in before if after.get(k) != before[k] and k not in case.may_change]
    assert changed == [], f"changed or removed: {changed}; {shown}"
    new = [k for k in after if k not in before
           and not any(fnmatch.fnmatch(k, g) for g in case.may_write)]
    assert new == [], f"left behind: {new}; {shown}"
    assert temporary_files(world.root) == [], shown


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    """The last safety net: a bug gives one line saying so (exit 2); --debug shows where."""
    import indical.calib.needs as needs_module
    from click.testing import CliRunner
    from indical.cli import main
    world = World(tmp_path / "w")
    db = str(world.library())

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(needs_module, "compute_needs", broken)
    plain = CliRunner().invoke(main, ["needs", "--library", db])
    assert plain.exit_code == 2
    assert "internal error (RuntimeError: a bug); run again with --debug" in plain.output
    assert "Traceback" not in plain.output
    debug = CliRunner().invoke(main, ["--debug", "needs", "--library", db])
    assert isinstance(debug.exception, RuntimeError)
