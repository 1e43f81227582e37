"""`--library`: an SQLite file or a postgresql:// URL, as the commands take it, and opening
an existing library for the commands that read one."""

from __future__ import annotations

from pathlib import Path

import click

from indical.calib.db import LibraryTarget, is_url, library_target
from indical.errors import IndicalError


class LibraryParam(click.ParamType):
    """A library file path, or a postgresql://USER@HOST/DB URL kept as text (a Path would fold
    its '//')."""

    name = "PATH|URL"

    def convert(self, value, param, ctx) -> LibraryTarget:
        if isinstance(value, str) and is_url(value):
            return value
        # a file: checked as click checks paths (a folder is refused by name)
        path = _FILE.convert(value, param, ctx)
        return library_target(str(path))


_FILE = click.Path(dir_okay=False, path_type=Path)
LIBRARY = LibraryParam()


def open_library(db):
    """The calibration library at `db` (a file or a postgresql:// URL; default
    $INDICAL_LIBRARY), refusing to create a file silently."""
    from indical.calib.library import CalibrationLibrary, default_library_path
    target = db if db is not None else default_library_path()
    if not is_url(target) and not target.is_file():
        raise IndicalError(f"{target}: no calibration library there; build masters into one "
                           f"first (indical library ingest DIR, then indical library sweep) or "
                           f"give --library PATH")
    return CalibrationLibrary(target)


LIBRARY_OPTION = click.option("--library", "library_db", type=LIBRARY, default=None,
                              envvar="INDICAL_LIBRARY",
                              help="Calibration library: a database file or a "
                                   "postgresql://USER@HOST/DB URL (default: $INDICAL_LIBRARY or "
                                   "$XDG_DATA_HOME/indical/library/library.sqlite).")
