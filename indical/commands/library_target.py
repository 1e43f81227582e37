"""`--library`: an SQLite file or a postgresql:// URL, as the commands take it."""

from __future__ import annotations

import click

from indical.calib.db import LibraryTarget, library_target


class LibraryParam(click.ParamType):
    """A library file path, or a postgresql://USER@HOST/DB URL kept as text (a Path would fold
    its '//')."""

    name = "PATH|URL"

    def convert(self, value, param, ctx) -> LibraryTarget:
        if not isinstance(value, str):
            return value
        if not value.strip():
            self.fail("is empty; give a library file or a postgresql:// URL", param, ctx)
        return library_target(value)


LIBRARY = LibraryParam()
