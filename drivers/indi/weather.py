"""Weather adapter: an INDI weather station (indi_simulator_weather, a weather watcher, a
safety proxy...) through WEATHER_STATUS, the light vector every INDI weather driver publishes:
one light per parameter, Ok when it is within its limits, Busy in the warning zone, Alert
beyond it."""

from __future__ import annotations

from indical.drivers.indi.connection import IndiConnection
from indical.drivers.indi.device import IndiDevice
from indical.errors import IndicalError
from indical.interfaces import Sky, Weather, WeatherReading

STATUS = "WEATHER_STATUS"


def sky_from_status(state: str, lights: dict[str, str]) -> WeatherReading:
    """Clear only when the property and every parameter are Ok; any warning or alert is bad
    weather; Idle (the station has no reading yet) is unknown. Pure, for tests."""
    bad = [name for name, s in lights.items() if s in ("Busy", "Alert")]
    if bad or state in ("Busy", "Alert"):
        detail = ", ".join(f"{name} {lights[name].lower()}" for name in bad) or f"status {state}"
        return WeatherReading(Sky.CLOUDY, f"WEATHER_STATUS: {detail}")
    if state == "Ok" and lights and all(s == "Ok" for s in lights.values()):
        return WeatherReading(Sky.CLEAR, "WEATHER_STATUS: every parameter ok")
    idle = [name for name, s in lights.items() if s != "Ok"]
    return WeatherReading(Sky.UNKNOWN, "WEATHER_STATUS: no reading yet"
                          + (f" ({', '.join(idle)} idle)" if idle else ""))


class IndiWeather(IndiDevice, Weather):
    def __init__(self, conn: IndiConnection, device: str, *, timeout_s: float,
                 busy_timeout_s: float = 300.0) -> None:
        super().__init__(conn, device, timeout_s=timeout_s, busy_timeout_s=busy_timeout_s)

    def _setup(self) -> None:
        self._prop(STATUS)

    def describe(self) -> dict[str, object]:
        r = self.reading()
        return {"kind": "INDI weather", "sky": r.sky.value, "detail": r.detail,
                **self._driver_facts()}

    def reading(self) -> WeatherReading:
        try:
            self._ready()
            p = self._prop(STATUS)
        except IndicalError as exc:  # server down, device gone: not clear, and say why
            return WeatherReading(Sky.UNKNOWN, f"{self.name}: {exc}")
        return sky_from_status(p.state, {k: str(v) for k, v in p.values.items()})
