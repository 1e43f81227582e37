"""Migration 6: masters recorded before indical knew colour sensors, made one configuration with
the masters built since.

Before migration 4 a master's configuration had no Bayer pattern. Migration 5 gave the masters
indical built from colour frames their sources' pattern, but not their `group_key` (the text
supersession compares), and left imported masters (which have no source frames) mono even when
their file says BAYERPAT. So a new colour master of the same configuration did not supersede an
old one (the library held two current masters and matching could pick the old one), and an
imported colour master served no colour light. This step, run once in the upgrade's
transaction on SQLite and PostgreSQL alike:

1. reads the pattern of each imported master still recorded as mono from its own file (the
   library's copy keeps the original header), as `indical library import` reads it now; a
   master whose file is gone or unreadable stays as it is, and the log says so;
2. gives bad pixel maps made from such a master its pattern (as migration 5 did);
3. writes the pattern into the group key of every colour master whose key lacks it, the text
   `autobuild.group_key_json` writes for that configuration today;
4. supersedes, among current masters that now share a key, each by the next one recorded
   (temperatures within 2 C, `CalibrationLibrary.add_master`'s rule), as if the keys had been
   equal when they were recorded; the trigger marks lights calibrated with them for
   recalibration.

What changed goes to the log (warnings, so a command line without logging set up shows them
too) and, for a re-read pattern, into the master's parameters (`upgraded`), which `indical
library ls` prints."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

#: add_master's default: masters within this many degrees are the same master.
_TEMPERATURE_TOL_C = 2.0


def upgrade(conn: "Connection") -> None:
    _read_imported_patterns(conn)
    _fill_keys(conn)
    _supersede_duplicates(conn)


def file_pattern(path: str, frame_type: str) -> str | None:
    """The Bayer pattern at pixel (0, 0) a master's file gives (None: mono). Raises OSError or
    ValueError when the file is gone or its header unusable."""
    from indical.calib.config import CameraConfig
    from indical.fits.header import read_primary_header
    from indical.fits.keywords import header_to_meta
    from indical.frame import FrameType
    meta = header_to_meta(read_primary_header(path), frame_type=FrameType(frame_type))
    return CameraConfig.from_meta(meta).bayer_pattern


def _read_imported_patterns(conn: "Connection") -> None:
    from sqlalchemy import text
    rows = conn.execute(text(
        "SELECT id, path, frame_type, parameters FROM masters WHERE bayer_pattern IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM master_sources s WHERE s.master_id = masters.id) "
        "ORDER BY id")).all()
    for master_id, path, frame_type, parameters in rows:
        try:
            pattern = file_pattern(path, frame_type)
        except (OSError, ValueError) as exc:
            log.warning("master %s (%s): recorded before colour support and its file can't be "
                        "read (%s): left as it was, mono", master_id, path, exc)
            continue
        if pattern is None:
            continue
        try:
            params = json.loads(parameters or "{}")
        except ValueError:
            params = {}
        note = (f"Bayer pattern {pattern} at pixel 0,0 read from the file on upgrade "
                f"(imported before colour support, recorded as mono)")
        params["upgraded"] = note
        conn.execute(text("UPDATE masters SET bayer_pattern = :p, parameters = :params "
                          "WHERE id = :id"),
                     {"p": pattern, "params": json.dumps(params, sort_keys=True),
                      "id": master_id})
        conn.execute(text("UPDATE bad_pixel_maps SET bayer_pattern = :p WHERE bayer_pattern "
                          "IS NULL AND (dark_master_id = :id OR flat_master_id = :id)"),
                     {"p": pattern, "id": master_id})
        log.warning("master %s (%s): %s", master_id, path, note)


def _fill_keys(conn: "Connection") -> None:
    from sqlalchemy import text
    rows = conn.execute(text("SELECT id, group_key, bayer_pattern FROM masters "
                             "WHERE bayer_pattern IS NOT NULL")).all()
    for master_id, key, pattern in rows:
        try:
            d = json.loads(key)
        except ValueError:
            continue   # not indical's text: never equal to a key indical writes anyway
        if not isinstance(d, dict) or d.get("bayer_pattern") == pattern:
            continue
        d["bayer_pattern"] = pattern
        conn.execute(text("UPDATE masters SET group_key = :k WHERE id = :id"),
                     {"k": json.dumps(d, sort_keys=True), "id": master_id})


def _supersede_duplicates(conn: "Connection") -> None:
    from sqlalchemy import text
    rows = conn.execute(text("SELECT id, group_key, temperature_c, path FROM masters "
                             "WHERE superseded_by IS NULL ORDER BY created_at, id")).all()
    current: dict[str, list[tuple[int, float | None, str]]] = {}
    for master_id, key, temp, path in rows:
        kept = []
        for old_id, old_t, old_path in current.get(key, []):
            if (old_t is None and temp is None) or (
                    old_t is not None and temp is not None
                    and abs(old_t - temp) <= _TEMPERATURE_TOL_C):
                conn.execute(text("UPDATE masters SET superseded_by = :new WHERE id = :old"),
                             {"new": master_id, "old": old_id})
                log.warning("master %s (%s) superseded by master %s (%s): the same "
                            "configuration, recorded before and after colour support",
                            old_id, old_path, master_id, path)
            else:
                kept.append((old_id, old_t, old_path))
        current[key] = kept + [(master_id, temp, path)]
