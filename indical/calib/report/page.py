"""Writes the report folder: index.html and its PNGs. Static: open the file in any browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Callable

import numpy as np

from indical import __version__
from indical.calib.needs import NeedsOptions, NeedsReport, compute_needs
from indical.calib.output import master_pixels
from indical.calib.report import plots
from indical.errors import FitsError

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3} .ok{color:#2a7d4a} .warn{color:#b07000} .bad{color:#c03030}
.masters{display:flex;flex-wrap:wrap;gap:1em} .master{border:1px solid #ddd;padding:.5em;width:430px}
.master img{display:block;max-width:420px} .small{font-size:.8em;color:#555}
progress{width:8em}
"""


@dataclass
class LogFile:
    path: Path
    entries: list[dict]
    problems: list[str] = field(default_factory=list)


def read_exposure_log(path: Path) -> LogFile:
    """A sequence's JSON-lines exposure log; lines that aren't JSON objects are reported, not
    fatal (a log cut short by a crash still plots)."""
    out = LogFile(Path(path), [])
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                out.problems.append(f"line {number}: not JSON ({exc.msg})")
                continue
            if not (isinstance(entry, dict) and "exposure" in entry):
                out.problems.append(f"line {number}: not an exposure entry")
                continue
            wrong = [k for k in _NUMBERS if not _is_number(entry.get(k), k == "exposure")]
            if wrong:
                out.problems.append(f"line {number}: {wrong[0]} = {entry.get(wrong[0])!r} is "
                                    "not a number")
                continue
            out.entries.append(entry)
    return out


# Fields of an exposure entry that the plots read as numbers (None allowed but for exposure).
_NUMBERS = ("exposure", "level", "target", "brightness")


def _is_number(value: object, required: bool) -> bool:
    if value is None:
        return not required
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def find_logs(folders: list[Path]) -> list[Path]:
    found: set[Path] = set()
    for folder in folders:
        if Path(folder).is_file():
            found.add(Path(folder))
        elif Path(folder).is_dir():
            found.update(p for p in Path(folder).rglob("*.jsonl") if p.is_file())
    return sorted(found)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")[:80] or "x"


def write_report(library, store, out_dir: Path, *, log_folders: list[Path] | None = None,
                 needs_options: NeedsOptions = NeedsOptions(), max_masters: int = 60,
                 warn: Callable[[str], None] = lambda message: None) -> Path:
    """Write OUT_DIR/index.html and OUT_DIR/png/*.png; returns the page's path.

    Everything is written into a temporary folder inside OUT_DIR first and moved into place at
    the end, so a failure (a full disk) leaves the earlier report as it was and no pictures
    without a page. Problems in sequence logs are passed to `warn` (and shown on the page)."""
    out_dir = Path(out_dir)
    made = not out_dir.exists()
    out_dir.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".report-", suffix=".tmp", dir=out_dir))
    try:
        _write_page(library, store, work, log_folders=log_folders,
                    needs_options=needs_options, max_masters=max_masters, warn=warn)
        png = out_dir / "png"
        png.mkdir(exist_ok=True)
        for old in png.glob("*.png"):  # pictures of an earlier report (superseded masters, ...)
            old.unlink()
        for new in sorted((work / "png").iterdir()):
            os.replace(new, png / new.name)
        os.replace(work / "index.html", out_dir / "index.html")
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if made:
            shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(exc, OSError) and (exc.filename is None or str(work) in str(exc.filename)):
            raise type(exc)(exc.errno, exc.strerror, str(out_dir)) from exc  # name the report
        raise
    shutil.rmtree(work, ignore_errors=True)
    return out_dir / "index.html"


def _write_page(library, store, out_dir: Path, *, log_folders: list[Path] | None,
                needs_options: NeedsOptions, max_masters: int,
                warn: Callable[[str], None]) -> Path:
    png = out_dir / "png"
    png.mkdir()
    now = datetime.now(timezone.utc)
    sections: list[str] = []

    # calibration status per night
    per_night = store.per_night()
    parts = ["<h2>Calibration status per night</h2>"]
    if per_night:
        plots.status_per_night(per_night, png / "status_per_night.png")
        parts.append('<img src="png/status_per_night.png" alt="lights per night by status">')
        rows = "".join(
            f"<tr><td>{escape(n)}</td><td class=ok>{c.get('calibrated', 0)}</td>"
            f"<td class=warn>{c.get('no_masters', 0)}</td><td class=bad>{c.get('failed', 0)}</td>"
            f"<td>{c.get('recalibrate', 0)}</td></tr>" for n, c in sorted(per_night.items()))
        parts.append("<table><tr><th>night</th><th>calibrated</th><th>no masters</th>"
                     f"<th>failed</th><th>to recalibrate</th></tr>{rows}</table>")
        trouble = [s for s in store.all() if s.status.value != "calibrated" or s.warnings]
        if trouble:
            rows = "".join(
                f"<tr><td>{escape(s.night or '?')}</td><td>{escape(Path(s.path).name)}</td>"
                f"<td>{escape(s.status.value)}</td><td>{escape(s.reason if s.status.value != 'calibrated' else '; '.join(s.warnings))}</td></tr>"
                for s in trouble[:200])
            parts.append("<details><summary>lights that failed, lack masters or carry warnings"
                         f" ({len(trouble)})</summary><table><tr><th>night</th><th>light</th>"
                         f"<th>status</th><th>why</th></tr>{rows}</table></details>")
    else:
        parts.append("<p>No lights calibrated yet (<code>indical calibrate</code>).</p>")
    sections.append("".join(parts))

    # needs
    sections.append(_needs_html(compute_needs(library, store, needs_options, now)))

    # masters
    parts = ["<h2>Masters</h2><div class=masters>"]
    current = library.masters()[:max_masters]
    for m in current:
        stem = f"master_{m.id}_{_slug(Path(m.path).stem)}"
        label = m.frame_type.value + (f" {m.filter}" if m.filter else "") + (
            f" {m.exposure_s:g} s" if m.frame_type.value in ("dark", "darkflat") else "") + (
            f" ({m.flat_source.lower()})" if m.flat_source else "")   # panel or sky
        try:
            data = master_pixels(Path(m.path))
        except FitsError as exc:
            parts.append(f"<div class=master><b>{escape(label)}</b><p class=bad>"
                         f"{escape(str(exc))}</p></div>")
            continue
        plots.master_preview(data, png / f"{stem}.png", label,
                             dark=m.frame_type.value in ("bias", "dark", "darkflat"))
        plots.histogram(data, png / f"{stem}_hist.png", f"{label} histogram")
        c = m.config
        temp = "" if c.temperature_c is None else f", {c.temperature_c:.1f} C"
        created = m.created_at.strftime("%Y-%m-%d %H:%M")
        age = (now - m.created_at).days
        expired = library.is_expired(m, now)
        parts.append(
            f"<div class=master><b>{escape(label)}</b>{escape(temp)}"
            f"<div class=small>{escape(c.camera)} bin {c.binning} gain {c.gain} offset {c.offset}"
            f" · {c.size} · {m.n_frames} frames, {escape(m.method)} · made "
            f"{created} UTC ({age} d{', <span class=bad>expired</span>' if expired else ''})</div>"
            f'<img src="png/{stem}.png" alt="preview of {escape(Path(m.path).name)}">'
            f'<img src="png/{stem}_hist.png" alt="histogram"></div>')
    for b in [m for m in store.bad_pixel_maps() if not m.superseded][:max_masters]:
        stem = f"bpm_{b.id}"
        try:
            data = master_pixels(b.path)
        except FitsError as exc:
            parts.append(f"<div class=master><b>bad pixel map</b><p class=bad>"
                         f"{escape(str(exc))}</p></div>")
            continue
        plots.master_preview(data, png / f"{stem}.png", "bad pixel map (white: bad)", dark=True)
        counts = {name: int(((data.astype(np.uint8) & bit) != 0).sum())
                  for name, bit in (("hot", 1), ("cold", 2), ("dead", 4))}
        parts.append(
            f"<div class=master><b>bad pixel map</b><div class=small>{escape(b.config.camera)} "
            f"bin {b.config.binning} gain {b.config.gain} offset {b.config.offset} · "
            f"{b.config.size} · "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + f' · {escape(b.path.name)}</div><img src="png/{stem}.png" alt="bad pixel map"></div>')
    if not current:
        parts.append("<p>No masters in the library yet.</p>")
    parts.append("</div>")
    sections.append("".join(parts))

    # sequence logs
    logs = find_logs(log_folders if log_folders is not None else [library.root])
    parts = ["<h2>Exposure searches and ramps (sequence logs)</h2>"]
    for i, path in enumerate(logs):
        log = read_exposure_log(path)
        if log.entries:
            name = f"log_{i}_{_slug(path.stem)}.png"
            plots.exposure_log_plot(log.entries, png / name, path.name)
            kinds = sorted({str(e.get('kind')) for e in log.entries})
            accepted = sum(1 for e in log.entries if e.get("accepted"))
            parts.append(f"<h3>{escape(path.name)}</h3><p class=small>{escape(str(path))}: "
                         f"{len(log.entries)} exposures ({escape(', '.join(kinds))}), "
                         f"{accepted} accepted</p><img src=\"png/{name}\" alt=\"exposure log\">")
        for problem in log.problems[:5]:
            parts.append(f"<p class=warn>{escape(path.name)}: {escape(problem)}</p>")
        if log.problems:
            more = len(log.problems) - 1
            warn(f"{path}: {log.problems[0]}" + (f" (and {more} more lines)" if more else "")
                 + "; those lines are left out of the report")
    if not logs:
        parts.append("<p>No sequence logs (*.jsonl) found.</p>")
    sections.append("".join(parts))

    html = (f"<!doctype html><html><head><meta charset=utf-8><title>indical report</title>"
            f"<style>{_CSS}</style></head><body><h1>indical calibration report</h1>"
            f"<p class=small>library {escape(library.name)} · made "
            f"{now.strftime('%Y-%m-%d %H:%M')} UTC by indical {__version__}</p>"
            + "".join(sections) + "</body></html>")
    page = out_dir / "index.html"
    page.write_text(html, encoding="utf-8")
    return page


def _needs_html(report: NeedsReport) -> str:
    parts = ["<h2>What calibration is missing</h2>"]
    if report.captures:
        rows = "".join(f"<tr><td>{escape(c['sequence'])}</td><td>{escape(c['description'])}</td>"
                       f"<td><progress value={c['done']} max={c['target']}></progress> "
                       f"{c['done']}/{c['target']}</td></tr>" for c in report.captures)
        parts.append(f"<h3>Captures in progress</h3><table><tr><th>sequence</th><th>capturing</th>"
                     f"<th>done</th></tr>{rows}</table>")
    if report.uncovered:
        rows = "".join(
            f"<tr><td>{escape(n.config.label())}</td><td>{escape(n.config.config.camera)}</td>"
            f"<td>{n.lights}</td><td><progress value={min(n.have, n.target)} max={n.target}>"
            f"</progress> {n.have}/{n.target}</td><td>{escape(n.state)}</td></tr>"
            for n in report.uncovered)
        parts.append("<h3>Uncovered configurations</h3><table><tr><th>master needed</th>"
                     f"<th>camera</th><th>lights</th><th>frames</th><th>to do</th></tr>{rows}</table>")
    elif report.lights == 0:
        parts.append("<p>No lights in the library yet.</p>")
    else:
        parts.append(f"<p class=ok>Every light in the library ({report.lights}) has matching "
                     f"masters.</p>")
    growing = [p for p in report.progress if p.have < p.target]
    if growing:
        rows = "".join(f"<tr><td>{escape(p.label)}</td><td><progress value={p.have} "
                       f"max={p.target}></progress> {p.have}/{p.target}</td></tr>" for p in growing)
        parts.append("<h3>Frames accumulating toward a master</h3><table><tr><th>group</th>"
                     f"<th>frames</th></tr>{rows}</table>")
    if report.expiring:
        rows = "".join(
            f"<tr><td>{escape(Path(e.master).name)}</td><td>{escape(e.kind)}</td>"
            f"<td>{e.age_days:g}</td><td>{e.expiry_days:g}</td><td class="
            f"{'bad' if e.expired else 'warn'}>{'expired' if e.expired else 'expiring soon'}"
            f"</td></tr>" for e in report.expiring)
        parts.append("<h3>Expiry</h3><table><tr><th>master</th><th>type</th><th>age (days)</th>"
                     f"<th>expiry (days)</th><th></th></tr>{rows}</table>")
    return "".join(parts)
