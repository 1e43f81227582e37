"""The autopilot's parts: the plan file, the windows (against astroplan's own rise and set
times), the weather answers, the journal after a crash, and `--once` exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from indical.autopilot.journal import Entry, Journal, State
from indical.autopilot.plan import PlanError, Window, load_plan, parse_plan
from indical.autopilot.windows import local_noon, night_spans
from indical.cli import main
from indical.drivers.indi.weather import sky_from_status
from indical.interfaces import Sky
from indical.rig import open_rig, parse_rig
from indical.site import Site

GOOD = """
[[task]]
name = "sky flats"
sequence = "twilight_flats.py"
when = "dusk"
only_if = ["needed", "clear"]
set = { FLATS_PER_FILTER = 10 }

[[task]]
name = "calibrate"
calibrate = "lights"
when = "arrival"
"""


def test_plan_reads_tasks_in_order(tmp_path):
    plan = parse_plan(GOOD, "plan.toml", tmp_path)
    sky, cal = plan.tasks
    assert sky.window is Window.DUSK and sky.sequence.name == "twilight_flats.py"
    assert sky.only_if == ("needed", "clear") and sky.settings == {"FLATS_PER_FILTER": 10}
    assert cal.window is None and cal.calibrate == tmp_path / "lights"
    assert plan.in_window(Window.DUSK) == [sky] and plan.arrivals == [cal]


@pytest.mark.parametrize("change, where", [
    (('when = "dusk"', 'when = "evening"'), "task 'sky flats' when"),
    (('only_if = ["needed", "clear"]', 'only_if = ["sunny"]'), "task 'sky flats' only_if"),
    (('only_if = ["needed", "clear"]', 'only_if = ["clear", "cloudy"]'), "only_if"),
    (('"twilight_flats.py"', '"no_such.py"'), "task 'sky flats' sequence"),
    (('set = { FLATS_PER_FILTER = 10 }', 'count = 3'), "task 'sky flats' count"),
    (('when = "arrival"', 'when = "arrival"\nonly_if = ["needed"]'), "task 'calibrate' only_if"),
    (('name = "calibrate"', 'name = "sky flats"'), "two tasks have this name"),
])
def test_plan_errors_name_the_file_task_and_key(tmp_path, change, where):
    with pytest.raises(PlanError) as err:
        parse_plan(GOOD.replace(*change), "plan.toml", tmp_path)
    assert str(err.value).startswith("plan.toml: ") and where in str(err.value)


def test_the_example_plan_is_found_by_its_name(tmp_path, monkeypatch):
    """As after a wheel install: the README's examples/autopilot/plan.toml and a bare name."""
    monkeypatch.chdir(tmp_path)
    for given in ("examples/autopilot/plan.toml", "plan.toml", "plan"):
        plan = load_plan(given)
        assert str(plan.source).endswith("autopilot/plan.toml")
        assert [t.name for t in plan.tasks][:2] == ["sky flats", "panel flats"]
    with pytest.raises(PlanError, match=r"nope.toml: file: no such plan file \(example plans "
                                        r"shipped with indical: plan.toml\)"):
        load_plan("nope.toml")
    (tmp_path / "plan.toml").write_text('[[task]]\nname = "mine"\nsequence = "panel_flats.py"\n'
                                        'when = "dawn"\n')
    assert [t.name for t in load_plan("plan.toml").tasks] == ["mine"]   # a file here wins


@pytest.mark.parametrize("site", [Site(52.0, 5.0, 10.0), Site(-33.0, -70.0)])
def test_windows_follow_astroplans_sunset_and_nautical_twilight(site):
    import astroplan
    from astropy import units as u
    from astropy.time import Time
    obs = astroplan.Observer(location=site.earth_location())
    noon = Time(local_noon(site, "2026-03-20"))
    dusk, night, dawn, day = night_spans(site, "2026-03-20")
    expected = [obs.sun_set_time(noon, which="next", horizon=0 * u.deg),
                obs.sun_set_time(noon, which="next", horizon=-12 * u.deg),
                obs.sun_rise_time(noon, which="next", horizon=-12 * u.deg),
                obs.sun_rise_time(noon, which="next", horizon=0 * u.deg)]
    ours = [dusk.start, dusk.end, dawn.start, dawn.end]
    for mine, theirs in zip(ours, expected):
        assert abs(mine.timestamp() - theirs.unix) < 60
    assert (night.start, night.end, day.start) == (dusk.end, dawn.start, dawn.end)


def test_windows_at_high_latitude_in_summer_have_no_night():
    dusk, night, dawn, day = night_spans(Site(65.0, 25.0), "2026-06-21")
    assert night.start is None and dusk.end == dawn.start
    dusk, night, dawn, day = night_spans(Site(78.0, 15.0), "2026-06-21")   # midnight sun
    assert dusk.start is None and dawn.start is None and day.start is not None


def test_weather_status_lights():
    assert sky_from_status("Ok", {"WEATHER_RAIN_HOUR": "Ok", "WEATHER_WIND_SPEED": "Ok"}).sky \
        is Sky.CLEAR
    cloudy = sky_from_status("Alert", {"WEATHER_RAIN_HOUR": "Alert", "WEATHER_WIND_SPEED": "Ok"})
    assert cloudy.sky is Sky.CLOUDY and "WEATHER_RAIN_HOUR alert" in cloudy.detail
    assert sky_from_status("Busy", {"WEATHER_CLOUD_COVER": "Busy"}).sky is Sky.CLOUDY
    assert sky_from_status("Idle", {"WEATHER_RAIN_HOUR": "Idle"}).sky is Sky.UNKNOWN
    assert sky_from_status("Ok", {}).sky is Sky.UNKNOWN


def test_sim_weather_counts_nights_from_the_clock_start():
    spec = parse_rig('[site]\nlatitude = 52.0\nlongitude = 5.0\n[clock]\n'
                     'start = "2026-03-20T10:00:00+00:00"\n[weather]\ndriver = "sim"\n'
                     'cloudy_nights = [2]\n', "rig")
    with open_rig(spec) as rig:
        seen = []
        for hours in (0, 12, 24 + 12, 48 + 12):   # day 1, night 1, night 2, night 3
            rig.clock.sleep(hours * 3600 - (rig.clock.now() - rig.clock.start).total_seconds())
            seen.append(rig.weather.reading().sky)
    assert seen == [Sky.CLEAR, Sky.CLEAR, Sky.CLOUDY, Sky.CLEAR]


def test_a_journal_line_lost_to_a_crash_is_written_at_the_next_start(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    state = State(tmp_path / "autopilot.sqlite")
    start = datetime(2026, 3, 20, 18, tzinfo=timezone.utc)
    state.begin("2026-03-20", "darks", start)
    entry = Entry("2026-03-20", "darks", "done", "ok", "2026-03-20T18:00:00+00:00",
                  "2026-03-20T19:00:00+00:00", 20)
    state.finish(entry)          # ... and the process dies before journalling it
    state.close()
    state = State(tmp_path / "autopilot.sqlite")
    assert state.journal_pending(journal) == 1
    assert state.journal_pending(journal) == 0     # once
    lines = [json.loads(x) for x in journal.path.read_text().splitlines()]
    assert lines == [vars(entry)]
    assert state.begin("2026-03-21", "darks", start) == 1
    assert state.interrupted()[0].night == "2026-03-21"
    state.close()


ONCE_RIG = """
[site]
latitude = 52.0
longitude = 5.0
[clock]
start = "2026-03-20T20:00:00+00:00"
[camera]
driver = "sim"
width = 64
height = 48
[weather]
driver = "sim"
"""


def test_once_exits_0_when_all_done_or_rightly_skipped_and_1_on_a_failure(tmp_path):
    (tmp_path / "rig.toml").write_text(ONCE_RIG)
    (tmp_path / "broken.py").write_text("def run(obs):\n    raise RuntimeError('no luck')\n")
    (tmp_path / "ok.py").write_text("def run(obs):\n    obs.say('fine')\n")
    (tmp_path / "plan.toml").write_text(
        '[[task]]\nname = "ok"\nsequence = "ok.py"\nwhen = "night"\n\n'
        '[[task]]\nname = "darks"\nsequence = "ok.py"\nwhen = "night"\nonly_if = ["cloudy"]\n')
    args = ["autopilot", str(tmp_path / "plan.toml"), "--rig", str(tmp_path / "rig.toml"),
            "-o", str(tmp_path / "out"), "--once", "night"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "out" / "journal.jsonl").read_text().splitlines()]
    assert [(e["task"], e["outcome"]) for e in lines] == [("ok", "done"), ("darks", "skipped")]

    (tmp_path / "plan.toml").write_text(
        '[[task]]\nname = "broken"\nsequence = "broken.py"\nwhen = "night"\n\n'
        '[[task]]\nname = "after"\nsequence = "ok.py"\nwhen = "night"\n')
    result = CliRunner().invoke(main, args[:-4] + ["-o", str(tmp_path / "out2"), "--once",
                                                   "night"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(x) for x in (tmp_path / "out2" / "journal.jsonl").read_text().splitlines()]
    assert [(e["task"], e["outcome"]) for e in lines] == [("broken", "failed"), ("after", "done")]
    assert "no luck" in lines[0]["reason"]                 # the night went on after the failure


def test_needed_of_a_sequence_without_still_needed_fails_that_task_only(tmp_path):
    (tmp_path / "rig.toml").write_text(ONCE_RIG)
    (tmp_path / "ok.py").write_text("def run(obs):\n    obs.say('fine')\n")
    (tmp_path / "plan.toml").write_text(
        '[[task]]\nname = "asks"\nsequence = "ok.py"\nwhen = "day"\nonly_if = ["needed"]\n\n'
        '[[task]]\nname = "after"\nsequence = "ok.py"\nwhen = "day"\n')
    result = CliRunner().invoke(main, ["autopilot", str(tmp_path / "plan.toml"), "--rig",
                                       str(tmp_path / "rig.toml"), "-o", str(tmp_path / "out"),
                                       "--once", "day"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(x) for x in (tmp_path / "out" / "journal.jsonl").read_text().splitlines()]
    assert [(e["task"], e["outcome"]) for e in lines] == [("asks", "failed"), ("after", "done")]
    assert "ok.py: has no still_needed(needs) function" in lines[0]["reason"]


def test_the_state_is_local_to_the_output_folder_whatever_the_library(tmp_path):
    from indical.autopilot.pilot import Paths
    out = tmp_path / "out"
    assert Paths(out).state_db == out / "autopilot.sqlite"
    assert Paths(out, library="postgresql://astro@dbhost/calib").state_db == \
        out / "autopilot.sqlite"
    elsewhere = tmp_path / "lib" / "library.sqlite"
    assert Paths(out, library=elsewhere).state_db == out / "autopilot.sqlite"
    # a state kept beside a library file by an older indical is used where it is...
    elsewhere.parent.mkdir()
    State(elsewhere.parent / "autopilot.sqlite").close()
    assert Paths(out, library=elsewhere).state_db == elsewhere.parent / "autopilot.sqlite"
    # ...until the output folder has its own
    State(out / "autopilot.sqlite").close()
    assert Paths(out, library=elsewhere).state_db == out / "autopilot.sqlite"
