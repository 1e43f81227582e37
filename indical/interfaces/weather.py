"""Weather interface: is the sky clear enough for sky flats, or closed enough for darks?

Three answers: clear, cloudy (any bad weather: clouds, rain, wind) and unknown (no reading, a
device that is not talking). Whoever decides treats unknown as not clear."""

from __future__ import annotations

import enum
from abc import abstractmethod
from dataclasses import dataclass

from indical.interfaces.device import Device


class Sky(enum.Enum):
    CLEAR = "clear"
    CLOUDY = "cloudy"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class WeatherReading:
    """The sky now, and in a few words why (the station's own parameters), for the journal."""

    sky: Sky
    detail: str = ""


class Weather(Device):
    @abstractmethod
    def reading(self) -> WeatherReading:
        """The weather now. Never raises for a station that can't be read: that is UNKNOWN."""
