"""The autopilot on indical's INDI simulators behind a real indiserver: the server is stopped
before dusk of night 3, that night's task fails with a reason naming the server,
and night 4 works again once the server is back. And the INDI weather adapter on the stock
weather simulator."""

from __future__ import annotations

import json
import time

from indi_helpers import SMALL_SIMS, start_server
from indical.autopilot.pilot import Autopilot, Hooks, Paths
from indical.autopilot.plan import Window, parse_plan
from indical.interfaces import Sky
from indical.rig import open_rig, parse_rig
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT

DEVICES = ["indical Flat Camera", "indical Flip-Flat"]

BIAS_SEQUENCE = '''
from indical.frame import FrameType

COUNT = 2


def run(obs):
    obs.close_cover()
    for _ in range(COUNT):
        obs.save(obs.expose(0.01, FrameType.BIAS))
'''


def _rig(address: str) -> str:
    roles = "\n".join(f'[{role}]\ndriver = "indi"\nserver = "{address}"\ndevice = "{device}"\n'
                      f"connect_timeout_s = 2.0\ntimeout_s = 5.0\n"
                      for role, device in (("camera", DEVICES[0]), ("cover", DEVICES[1]),
                                           ("panel", DEVICES[1])))
    return f"""
[site]
latitude = 52.0
longitude = 5.0

[clock]
start = "2026-03-20T10:00:00+00:00"
speed = 0

[weather]
driver = "sim"

{roles}
"""


def test_server_stopped_before_dusk_of_night_3_then_night_4_works(tmp_path):
    server = start_server(tmp_path / "indi", [OUR_CCD, OUR_FLIPFLAT], SMALL_SIMS)
    server.wait_for_devices(DEVICES)
    port = server.port
    (tmp_path / "bias.py").write_text(BIAS_SEQUENCE)
    plan = parse_plan('[[task]]\nname = "bias"\nsequence = "bias.py"\nwhen = "dusk"\n',
                      "test plan", tmp_path)
    spec = parse_rig(_rig(server.address), "test rig")
    nights: list[str] = []

    def before_window(span) -> None:
        nonlocal server
        if span.window is not Window.DUSK:
            return
        nights.append(span.night)
        if len(nights) == 3:
            server.stop()
        elif len(nights) == 4:
            server = start_server(tmp_path / "indi-again", [OUR_CCD, OUR_FLIPFLAT], SMALL_SIMS,
                                  port=port)
            server.wait_for_devices(DEVICES)

    paths = Paths(tmp_path / "out", store=tmp_path / "trained.sqlite")
    try:
        with Autopilot(plan, spec, paths, hooks=Hooks(before_window=before_window)) as pilot:
            pilot.run(nights=4)
    finally:
        server.stop()
    journal = [json.loads(x) for x in paths.journal_file.read_text().splitlines()]
    assert [e["night"] for e in journal] == nights == [f"2026-03-{d}" for d in (20, 21, 22, 23)]
    assert [e["outcome"] for e in journal] == ["done", "done", "failed", "done"]
    assert [e["frames"] for e in journal] == [2, 2, 0, 2]
    failed = journal[2]["reason"]
    assert failed.startswith(f"indiserver 127.0.0.1:{port}: connecting:"), failed
    assert "is indiserver running there" in failed, failed


def test_indi_weather_station_clear_then_rain(tmp_path):
    server = start_server(tmp_path / "indi", ["indi_simulator_weather"])
    try:
        server.wait_for_devices(["Weather Simulator"])
        spec = parse_rig(f'[weather]\ndriver = "indi"\nserver = "{server.address}"\n'
                         f'device = "Weather Simulator"\n', "test rig")
        with open_rig(spec) as rig:
            weather = rig.weather
            deadline = time.monotonic() + 15
            while weather.reading().sky is not Sky.CLEAR and time.monotonic() < deadline:
                time.sleep(0.2)
            assert weather.reading().sky is Sky.CLEAR, weather.reading()
            conn = weather.conn
            conn.send_number("Weather Simulator", "WEATHER_CONTROL", {"Precip": 10.0})
            conn.send_switch("Weather Simulator", "WEATHER_REFRESH", "REFRESH")  # not in 60 s
            deadline = time.monotonic() + 15
            while weather.reading().sky is not Sky.CLOUDY and time.monotonic() < deadline:
                time.sleep(0.2)
            reading = weather.reading()
            assert reading.sky is Sky.CLOUDY and "RAIN" in reading.detail, reading
    finally:
        server.stop()
    # the server gone: unknown, never clear, and the reason says so
    assert weather.reading().sky is Sky.UNKNOWN
