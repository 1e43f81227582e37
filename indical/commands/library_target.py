"""`--library`: an SQLite file or a postgresql:// URL, as the commands take it."""

from __future__ import annotations

from pathlib import Path

import click

from indical.calib.db import LibraryTarget, is_url, library_target


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
