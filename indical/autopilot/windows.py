"""When dusk, night, dawn and day are at the rig's site, from the sun's altitude
(`indical.twilight.window.sun_altitudes_deg`: ERFA, see indical/twilight/sun.py).

A night is named by the local date of its evening (as frames' night folders are). Its windows
follow each other: dusk from sunset to nautical dusk (sun -12 deg, so the sky flats' -2 to -10
deg fit in), night to nautical dawn, dawn to sunrise, day to the next sunset. Where the sun
never gets to -12 deg (high-latitude summer) there is no night window: dusk and dawn meet at
the middle of the night. Where it does not set or rise at all, only the day is there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from indical.autopilot.plan import ORDER, Window
from indical.site import Site

NAUTICAL_DEG = -12.0
PAST = 60.0   # look for the next crossing this many seconds after the last one
STEP_S = 600.0   # sun altitude samples; interpolated crossings are within 4 s of astroplan's


@dataclass(frozen=True)
class Span:
    window: Window
    night: str                 # the local date of the evening, YYYY-MM-DD
    start: datetime | None     # None: this window does not happen tonight
    end: datetime | None


def local_noon(site: Site, night: str) -> datetime:
    """Local mean noon of the day the night starts, in UTC."""
    d = date.fromisoformat(night)
    return (datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc)
            - timedelta(hours=site.longitude_deg / 15.0))


def night_of(site: Site, when: datetime) -> str:
    """The night a moment belongs to: the local date of the evening before it (noon to noon)."""
    from indical.sinks import night_of as _night_of
    return _night_of(when, site.longitude_deg)


def night_spans(site: Site, night: str) -> list[Span]:
    """The four windows of one night, in order (dusk, night, dawn, day), from one call for
    the sun's altitude over 36 hours (10-minute samples; crossings interpolated)."""
    from indical.twilight.window import SunPath, from_unix, to_unix

    noon = local_noon(site, night)
    t0 = to_unix(noon)
    path = SunPath.compute(site, t0, 36 * 3600.0, step_s=STEP_S)
    next_noon = noon + timedelta(days=1)

    def at(t: float | None) -> datetime | None:
        return None if t is None else from_unix(t)

    def absent(*windows: Window) -> list[Span]:
        return [Span(w, night, None, None) for w in windows]

    if path.altitude(t0) <= 0.0:
        rises = path.crossing(0.0, t0)
        if rises is None or rises > to_unix(next_noon):   # the sun stays down: one long night, no twilight to use
            return absent(Window.DUSK) + [Span(Window.NIGHT, night, noon, next_noon)] + \
                absent(Window.DAWN, Window.DAY)
    sunset_t = path.crossing(0.0, t0)
    sunrise_t = None if sunset_t is None else path.crossing(0.0, sunset_t + PAST)
    if sunset_t is None or sunrise_t is None or sunset_t > to_unix(next_noon):
        return absent(Window.DUSK, Window.NIGHT, Window.DAWN) + \
            [Span(Window.DAY, night, noon, next_noon)]
    dusk_end_t = path.crossing(NAUTICAL_DEG, sunset_t + PAST)
    dawn_start_t = None if dusk_end_t is None else path.crossing(NAUTICAL_DEG, dusk_end_t + PAST)
    sunset, sunrise = at(sunset_t), at(sunrise_t)
    if dusk_end_t is None or dawn_start_t is None or dusk_end_t >= sunrise_t:
        middle = sunset + (sunrise - sunset) / 2   # white nights: dusk and dawn meet
        dusk_end = dawn_start = middle
        night_span = Span(Window.NIGHT, night, None, None)
    else:
        dusk_end, dawn_start = at(dusk_end_t), at(dawn_start_t)
        night_span = Span(Window.NIGHT, night, dusk_end, dawn_start)
    next_sunset = at(path.crossing(0.0, sunrise_t + PAST))
    return [Span(Window.DUSK, night, sunset, dusk_end), night_span,
            Span(Window.DAWN, night, dawn_start, sunrise),
            Span(Window.DAY, night, sunrise, next_sunset or next_noon + timedelta(hours=6))]


def next_night(night: str) -> str:
    return (date.fromisoformat(night) + timedelta(days=1)).isoformat()


def current_or_next(site: Site, now: datetime, cache: dict[str, list[Span]] | None = None
                    ) -> Span:
    """The window `now` is in, or the next one that happens (skipping windows absent
    tonight)."""
    cache = {} if cache is None else cache
    night = night_of(site, now)
    # the day window of the previous night runs into this night's noon-to-sunset
    candidates = []
    for n in ((date.fromisoformat(night) - timedelta(days=1)).isoformat(), night,
              next_night(night)):
        if n not in cache:
            cache[n] = night_spans(site, n)
        candidates += cache[n]
    for span in candidates:
        if span.start is None or span.end is None:
            continue
        if span.end > now:
            return span
    raise RuntimeError(f"no window found after {now.isoformat()} at {site}")


__all__ = ["Span", "night_spans", "current_or_next", "night_of", "next_night", "local_noon",
           "ORDER"]
