"""The hardware abstraction layer: one small interface per capability."""

from indical.interfaces.camera import Camera, CameraInfo
from indical.interfaces.cover import Cover, CoverState
from indical.interfaces.device import Device
from indical.interfaces.filter_wheel import FilterWheel
from indical.interfaces.light_panel import LightPanel, PanelInfo
from indical.interfaces.mount import Mount
from indical.interfaces.relay import Relay
from indical.interfaces.weather import Sky, Weather, WeatherReading

#: Role name in a rig file -> the interface a device in that role implements.
ROLE_INTERFACES: dict[str, type[Device]] = {
    "camera": Camera,
    "panel": LightPanel,
    "cover": Cover,
    "filter_wheel": FilterWheel,
    "relay": Relay,
    "mount": Mount,
    "weather": Weather,
}

__all__ = ["Camera", "CameraInfo", "Cover", "CoverState", "Device", "FilterWheel",
           "LightPanel", "PanelInfo", "Mount", "Relay", "Sky", "Weather", "WeatherReading",
           "ROLE_INTERFACES"]
